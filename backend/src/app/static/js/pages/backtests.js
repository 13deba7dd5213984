// Backtests: a form that queues a run (an RQ job), its progress live, the result (equity and drawdown
// beside buy-and-hold, metrics, fills), past runs, and two or more runs side by side.
import { get, post } from "../api.js";
import { el, clear, fmt, cls, table } from "../dom.js";
import { lineChart } from "../charts.js";
import { act, toast } from "../ui.js";

const METRICS = [["total_return", "return", fmt.pct], ["sharpe", "Sharpe", fmt.num], ["max_drawdown", "max drawdown", fmt.pct],
  ["trades", "trades", (x) => fmt.num(x, 0)], ["win_rate", "win rate", fmt.pct], ["fees", "fees", fmt.num], ["final_equity", "final equity", fmt.num],
  ["long_trades", "long trades", (x) => (x == null ? "–" : fmt.num(x, 0))], ["long_pnl", "long PnL (net of fees)", (x) => (x == null ? "–" : fmt.signed(x))],
  ["short_trades", "short trades", (x) => (x == null ? "–" : fmt.num(x, 0))], ["short_pnl", "short PnL (net of fees)", (x) => (x == null ? "–" : fmt.signed(x))],
  ["funding", "funding", (x) => (x == null ? "–" : fmt.signed(x))], ["liquidations", "liquidations", (x) => (x == null ? "–" : fmt.num(x, 0))]];

function field(label, input) {
  return el("label", {}, label, input);
}

function form(opts, onRun) {
  const today = new Date().toISOString().slice(0, 10);
  const weekAgo = new Date(Date.now() - 7 * 86400e3).toISOString().slice(0, 10);
  const f = el("form", { class: "inline", id: "backtest-form" },
    field("symbols (comma separated)", el("input", { name: "symbols", value: opts.files[0] || "BTCUSDT", size: 28 })),
    field("candles", el("select", { name: "source" }, opts.sources.map((s) => el("option", { value: s, text: s === "file" ? `file (${opts.files.length} in data dir)` : s })))),
    field("from", el("input", { name: "start", type: "date", value: weekAgo })),
    field("to", el("input", { name: "end", type: "date", value: today })),
    field("timeframe (synthetic)", el("select", { name: "timeframe" }, opts.timeframes.map((t) => el("option", { value: t, text: t, selected: t === "5m" })))),
    field("strategy", el("select", { name: "strategy" }, opts.strategies.map((s) => el("option", { value: s, text: s })),
      opts.levilang.map((s) => el("option", { value: s, text: "LeviLang: " + s })))),
    field("fee (bps)", el("input", { name: "fee_bps", type: "number", value: 10, step: "any", min: 0 })),
    field("slippage (bps)", el("input", { name: "slippage_bps", type: "number", value: 5, step: "any", min: 0 })),
    field("entry size (quote)", el("input", { name: "size", type: "number", value: 1000, step: "any", min: 0 })),
    field("market", el("select", { name: "market" }, ["spot", "perpetual"].map((m) => el("option", { value: m, text: m })))),
    field("leverage (perpetual)", el("input", { name: "leverage", type: "number", value: 1, step: "any", min: 1, max: 125 })),
    field("shorts (built-ins)", el("input", { name: "allow_short", type: "checkbox" })),
    el("button", { type: "submit", id: "run-backtest" }, "run backtest"));
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const d = new FormData(f);
    onRun({ symbols: String(d.get("symbols")).split(",").map((s) => s.trim().toUpperCase()).filter(Boolean), source: d.get("source"),
      start: d.get("start"), end: d.get("end"), timeframe: d.get("timeframe"), strategy: d.get("strategy"),
      fee_bps: Number(d.get("fee_bps")), slippage_bps: Number(d.get("slippage_bps")), size: Number(d.get("size")),
      market: d.get("market"), leverage: Number(d.get("leverage")), allow_short: d.get("allow_short") === "on" });
  });
  return f;
}

async function waitFor(id, bar, text) {
  const since = Date.now();
  for (;;) {
    const r = await get(`/runs/${id}`);
    bar.value = r.progress;
    text.textContent = `${r.status}: ${r.message || ""}` + (r.status === "queued" && Date.now() - since > 5000
      ? " (waiting for an RQ worker: the manager starts them unless --workers 0)" : "");
    if (r.status === "done" || r.status === "error") return r;
    await new Promise((res) => setTimeout(res, 400));
  }
}

function metricsTable(columns) {  // columns: [{name, metrics}]
  return table([{ label: "", value: (m) => m[1] }, ...columns.map((c) => ({ label: c.name, num: true, value: (m) => m[2](c.metrics[m[0]]) }))], METRICS);
}

// Replay: the same file through a real paper engine at a chosen speed; it then shows in the fleet.
function replayForm(runId, sym) {
  const speed = el("input", { type: "number", value: 600, min: 1, step: "any", name: "speed", size: 6 });
  return el("form", { class: "inline", "data-replay": sym, onsubmit: async (ev) => {
    ev.preventDefault();
    const res = await act(`replay ${sym}`, "/replays", { run_id: runId, symbol: sym, speed: Number(speed.value) }, false);
    if (res && res.status === "done") location.hash = "#/";
  } }, el("label", {}, "replay speed (x real time)", speed), el("button", { type: "submit" }, "replay through an engine"));
}

function showRun(box, run, charts) {
  clear(box);
  if (run.status === "error") { box.append(el("p", { class: "neg", text: `Failed: ${run.error}` })); return; }
  const s = run.spec;
  box.append(el("h2", { text: `Run ${run.id}: ${s.strategy} on ${s.symbols.join(", ")} (${s.source}, ${s.start} → ${s.end}, fee ${s.fee_bps} bps, slippage ${s.slippage_bps} bps${s.market === "perpetual" ? `, perpetual ${s.leverage}x` : ""})` }));
  for (const [sym, p] of Object.entries(run.result.pairs)) {
    const eq = el("div", { class: "chart", "data-chart": "equity" });
    const dd = el("div", { class: "chart small", "data-chart": "drawdown" });
    box.append(el("h2", { text: `${sym}: ${p.candles} candles, ${fmt.time(p.from_ms)} → ${fmt.time(p.to_ms)}` }),
      s.source === "file" ? replayForm(run.id, sym) : "",
      metricsTable([{ name: "strategy", metrics: p.metrics.strategy }, { name: "buy and hold", metrics: p.metrics.buy_and_hold }]),
      el("h2", { text: "Equity: strategy and buy-and-hold" }), eq, el("h2", { text: "Drawdown" }), dd,
      el("details", {}, el("summary", { text: `Fills (${p.fills.length}; newest 100 shown)` }),
      table([{ label: "candle", value: (f) => fmt.time(f.ts) }, { label: "side", value: (f) => f.side }, { label: "qty", num: true, value: (f) => fmt.qty(f.qty) },
        { label: "price", num: true, value: (f) => fmt.qty(f.price) }, { label: "fee", num: true, value: (f) => fmt.num(f.fee, 4) }], p.fills.slice(-100).reverse())));
    const t = p.curve.t.map((x) => x / 1000);
    charts.push(lineChart(eq, [{ name: "strategy", t, values: p.curve.equity }, { name: "buy and hold", t, values: p.curve.buy_and_hold }]));
    charts.push(lineChart(dd, [{ name: "drawdown", t, values: p.curve.drawdown.map((x) => 100 * x), color: "#f85149" }]));
  }
}

async function compare(box, ids, charts) {
  const runs = (await Promise.all(ids.map((id) => get(`/runs/${id}`)))).filter((r) => r.status === "done");
  box.append(el("h2", { text: "Side by side: metrics are the mean over each run's symbols; the chart shows each run's first symbol (return %)" }),
    metricsTable(runs.map((r) => ({ name: `${r.id.slice(0, 6)} ${r.spec.strategy}`, metrics: r.result.mean.strategy }))));
  const lines = runs.map((r) => {
    const [sym, p] = Object.entries(r.result.pairs)[0];
    return { name: `${r.id.slice(0, 6)} ${r.spec.strategy} ${sym}`, t: p.curve.t.map((x) => x / 1000), values: p.curve.equity.map((v) => 100 * (v / p.curve.equity[0] - 1)) };
  });
  const c = el("div", { class: "chart", id: "compare-chart" });
  box.append(c);
  charts.push(lineChart(c, lines));
}

export async function render(main, live, ids) {
  const charts = [];
  const opts = await get("/backtests/options");
  const bar = el("progress", { max: 1, value: 0, id: "backtest-progress" });
  const status = el("span", { class: "muted", id: "backtest-status" });
  const result = el("div", { id: "backtest-result" });
  const past = el("div", { id: "past-runs" });
  main.append(el("h1", { text: "Backtests" }), form(opts, async (spec) => {
    try {
      const { id } = await post("/backtests", spec);
      const run = await waitFor(id, bar, status);
      location.hash = `#/backtests/${run.id}`;
    } catch (e) { toast(`backtest: ${e.detail || e.message}`, true); status.textContent = e.detail || e.message; }
  }), el("p", {}, bar, " ", status), result, el("h2", { text: "Past runs" }), past);
  const list = (await get("/runs?kind=backtest")).runs;
  const picked = new Set();
  const cmp = el("button", { type: "button", id: "compare", onclick: () => { location.hash = `#/backtests/${[...picked].join(",")}`; } }, "compare selected");
  past.append(table([{ label: "", value: (r) => el("input", { type: "checkbox", "data-run": r.id, onchange: (e) => (e.target.checked ? picked.add(r.id) : picked.delete(r.id)) }) },
    { label: "run", value: (r) => el("a", { href: `#/backtests/${r.id}`, text: r.id }) }, { label: "created", value: (r) => fmt.time(r.created_at * 1000) },
    { label: "strategy", value: (r) => r.spec.strategy }, { label: "symbols", value: (r) => (r.spec.symbols || []).join(", ") },
    { label: "range", value: (r) => `${r.spec.start} → ${r.spec.end}` }, { label: "status", value: (r) => r.status }], list), cmp);
  if (ids) {
    const list2 = ids.split(",");
    if (list2.length > 1) await compare(result, list2, charts);
    else showRun(result, await get(`/runs/${list2[0]}`), charts);
  }
  return () => charts.forEach((c) => c.remove());
}
