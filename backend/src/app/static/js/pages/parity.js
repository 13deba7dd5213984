// Parity: the engine's session replayed through the backtester (an RQ job), trade by trade, and the PnL gap
// across its recorded sessions attributed to causes (decision and why, timing, price, fees, size, funding).
import { get, post } from "../api.js";
import { el, clear, fmt, cls, table } from "../dom.js";
import { toast } from "../ui.js";

function side(s) {
  return s ? `${s.side} ${fmt.qty(s.qty)} @ ${fmt.qty(s.price)} (slip ${s.slippage_bps === null ? "–" : fmt.num(s.slippage_bps, 2)} bps)` : "—";
}

function attribution(a) {
  const share = (c) => (c.share === null ? "–" : fmt.pct(c.share, 0));
  const out = el("div", { id: "parity-attribution" },
    el("h2", { text: "Why the PnL differs" }),
    el("p", { id: "parity-gap", text: `Over ${a.sessions} session(s) — ${a.restarts} restart(s), ${a.config_changes} config change(s), ${a.candles} candles${a.missing ? `, ${a.missing} missing from the engine's record` : ""} — the engine made ${fmt.signed(a.engine_pnl)}, the backtester ${fmt.signed(a.backtest_pnl)}: a gap of ${fmt.signed(a.gap)} (explained ${fmt.signed(a.explained)}, unexplained ${fmt.signed(a.unexplained)}).` }));
  if (!a.causes.length) { out.append(el("p", { class: "ok", text: "No difference to explain." })); return out; }
  out.append(table([{ label: "cause", value: (c) => c.cause + (c.unexplained ? " (unexplained)" : "") },
    { label: "amount", num: true, value: (c) => fmt.signed(c.amount), cls: (c) => cls(c.amount) },
    { label: "share of the gap", num: true, value: share }, { label: "fills", num: true, value: (c) => String(c.fills) }],
  a.causes, (c) => ({ class: c.unexplained ? "diff" : "" })),
  el("h2", { text: "Per fill" }),
  el("div", { class: "scroll" }, table([{ label: "candle", value: (x) => fmt.time(x.candle_ts) }, { label: "cause", value: (x) => x.cause },
    { label: "why", value: (x) => x.why }, { label: "amount", num: true, value: (x) => fmt.signed(x.amount), cls: (x) => cls(x.amount) }], a.rows)));
  return out;
}

function show(box, r) {
  clear(box);
  const res = r.result;
  const verdict = res.differences === 0 && res.same_strategy
    ? el("p", { class: "ok", id: "parity-verdict", text: `No differences: ${res.fills_engine} engine fills and ${res.fills_backtest} backtest fills agree over ${res.candles} candles.` })
    : el("p", { class: "neg", id: "parity-verdict", text: `${res.differences} of ${Math.max(res.fills_engine, res.fills_backtest)} fills differ (engine ${res.fills_engine}, backtest ${res.fills_backtest}).` });
  box.append(verdict,
    el("p", { class: "muted", text: `Strategy ${res.same_strategy ? "identical" : "DIFFERENT"} (engine ${res.engine_strategy_hash}, backtest ${res.strategy_hash}). Compared: the engine's latest session (${res.sessions} in its candle record: a start or an applied config begins one), ${fmt.time(res.from_ms)} → ${fmt.time(res.to_ms)}, both sides starting from the journal as it stood then (position ${fmt.qty(res.position_at_start)}).` }),
    table([{ label: "candle", value: (x) => fmt.time(x.candle_ts) }, { label: "engine", value: (x) => side(x.engine) },
      { label: "backtest", value: (x) => side(x.backtest) }, { label: "differs in", value: (x) => x.differs.join(", ") || "—" }],
    res.rows, (x) => ({ class: x.differs.length ? "diff" : "" })));
  if (res.attribution) box.append(attribution(res.attribution));
}

export async function render(main, live, symbol) {
  const box = el("div", { id: "parity-result" });
  const status = el("span", { class: "muted", id: "parity-status" });
  const run = el("button", { type: "button", id: "run-parity", onclick: async () => {
    try {
      const { id } = await post(`/engines/${symbol}/parity`, {});
      for (;;) {
        const r = await get(`/runs/${id}`);
        status.textContent = `${r.status}: ${r.message || ""}`;
        if (r.status === "error") { toast(`parity: ${r.error}`, true); return; }
        if (r.status === "done") { show(box, r); return; }
        await new Promise((res) => setTimeout(res, 400));
      }
    } catch (e) { toast(`parity: ${e.detail || e.message}`, true); status.textContent = e.detail || e.message; }
  } }, "replay through the backtester");
  main.append(el("h1", {}, `Parity: ${symbol} `, el("a", { href: `#/symbol/${symbol}`, text: "back" })),
    el("p", { class: "muted", text: "Replays the candles this engine traded through the backtester with the same config and strategy, and compares the fills one by one (signal, size, fill price, slippage, fee)." }),
    el("p", {}, run, " ", status), box);
  return null;
}
