// Portfolio: total equity in USD over time (every engine's equity times its quote's USD rate) and daily PnL.
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
  if (!p.t.length) { box.textContent = "No history yet."; return null; }
  const c1 = lineChart(box, [{ name: "equity", t: p.t, values: p.equity }]);
  const c2 = histogram(bars, p.daily.map((d) => ({ time: Date.parse(d.day + "T00:00:00Z") / 1000, value: d.pnl })));
  return () => { c1.remove(); c2.remove(); };
}
