// Parity: the engine's session replayed through the backtester (an RQ job), trade by trade.
import { get, post } from "../api.js";
import { el, clear, fmt, table } from "../dom.js";
import { toast } from "../ui.js";

function side(s) {
  return s ? `${s.side} ${fmt.qty(s.qty)} @ ${fmt.qty(s.price)} (slip ${s.slippage_bps === null ? "–" : fmt.num(s.slippage_bps, 2)} bps)` : "—";
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
