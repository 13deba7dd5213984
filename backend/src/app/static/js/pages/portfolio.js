// Portfolio: total equity in USD over time (every engine's equity times its quote's USD rate) and daily PnL;
// below, the long history from the analytics store: PnL per symbol per day (90 days) and engine incidents.
import { get } from "../api.js";
import { el, fmt, cls, card, table } from "../dom.js";
import { lineChart, histogram } from "../charts.js";

export async function render(main) {
  const p = await get("/portfolio");
  const box = el("div", { class: "chart", id: "portfolio-chart" });
  const bars = el("div", { class: "chart small", id: "daily-chart" });
  const last = p.equity.length ? p.equity[p.equity.length - 1] : null;
  const first = p.equity.length ? p.equity[0] : null;
  main.append(el("h1", { text: "Portfolio" }),
    el("div", { class: "cards" }, card(`equity (${p.currency})`, fmt.num(last)),
      card(`change over the window (${p.currency})`, last === null ? "–" : fmt.signed(last - first), cls(last - first))),
    p.unpriced.length ? el("p", { class: "muted", text: `Not in the totals (quote currency without a USD rate; set quote_usd): ${p.unpriced.join(", ")}` }) : "",
    el("h2", { text: `Equity (${p.currency})` }), box, el("h2", { text: `Daily PnL (${p.currency})` }), bars,
    table([{ label: "day", value: (r) => r.day }, { label: `PnL (${p.currency})`, num: true, value: (r) => fmt.signed(r.pnl), cls: (r) => cls(r.pnl) }], [...p.daily].reverse()));
  main.append(await storeHistory());
  if (!p.t.length) { box.textContent = "No history yet."; return null; }
  const c1 = lineChart(box, [{ name: "equity", t: p.t, values: p.equity }]);
  const c2 = histogram(bars, p.daily.map((d) => ({ time: Date.parse(d.day + "T00:00:00Z") / 1000, value: d.pnl })));
  return () => { c1.remove(); c2.remove(); };
}

function daysAgo(n) {
  return new Date(Date.now() - n * 86400000).toISOString().slice(0, 10);
}

// PnL per symbol per day (quote currency) and incidents per engine, from /history (the analytics store).
async function storeHistory() {
  const section = el("section", { id: "store-history" }, el("h2", { text: "PnL per symbol per day, last 90 days (analytics store)" }));
  let pnl, incidents;
  try {
    [pnl, incidents] = await Promise.all([get(`/history/pnl?start=${daysAgo(89)}`), get(`/history/crashes?start=${daysAgo(29)}`)]);
  } catch (err) {
    section.append(el("p", { class: "muted", text: `Not available: ${err.message}` }));
    return section;
  }
  const symbols = [...new Set(pnl.rows.map((r) => r.symbol))].sort();
  const byDay = new Map();
  for (const r of pnl.rows) byDay.set(r.period, { ...(byDay.get(r.period) || {}), [r.symbol]: r.pnl });
  const days = [...byDay.keys()].sort().reverse();
  section.append(days.length
    ? table([{ label: "day", value: (d) => d }, ...symbols.map((s) => ({ label: s, num: true, value: (d) => fmt.signed(byDay.get(d)[s]), cls: (d) => cls(byDay.get(d)[s]) }))], days)
    : el("p", { class: "muted", text: "No days recorded yet." }));
  section.append(el("h2", { text: "Engine incidents per day, last 30 days" }), incidents.rows.length
    ? table(["period", "symbol", "crashed", "hung", "failed", "stalled", "recovered"].map((k) => ({ label: k, num: !["period", "symbol"].includes(k), value: (r) => r[k] })), [...incidents.rows].reverse())
    : el("p", { class: "muted", text: "No incidents." }));
  return section;
}
