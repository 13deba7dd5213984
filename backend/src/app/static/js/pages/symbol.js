// One engine: candlesticks with its fills marked, its position and equity over time, its log tail and
// its event history; the row's live figures from the feed.
import { get } from "../api.js";
import { el, clear, fmt, cls, card, table } from "../dom.js";
import { candleChart, lineChart } from "../charts.js";

function logLine(r) {
  const extra = Object.entries(r).filter(([k]) => !["ts", "time", "level", "msg", "message", "logger", "symbol", "process"].includes(k));
  const text = `${r.ts || r.time || ""} ${r.level || ""} ${r.msg || r.message || ""}` + (extra.length ? " " + JSON.stringify(Object.fromEntries(extra)) : "");
  return el("div", { class: r.level || "", text });
}

export async function render(main, live, symbol) {
  const cards = el("div", { class: "cards" });
  const candleBox = el("div", { class: "chart", id: "candles" });
  const posBox = el("div", { class: "chart small", id: "position" });
  const eqBox = el("div", { class: "chart small", id: "equity" });
  const logBox = el("div", { class: "log", id: "logs" });
  const eventsBox = el("div", { id: "events" });
  main.append(el("h1", {}, `${symbol} `, el("a", { href: `#/parity/${symbol}`, text: "parity" })), cards,
    el("h2", { text: "Candles and fills" }), candleBox,
    el("div", { class: "grid2" }, el("div", {}, el("h2", { text: "Position" }), posBox), el("div", {}, el("h2", { text: "Equity" }), eqBox)),
    el("div", { class: "grid2" }, el("div", {}, el("h2", { text: "Log (newest last)" }), logBox), el("div", {}, el("h2", { text: "Events" }), eventsBox)),
    el("h2", { text: "Fills (newest first)" }), el("div", { id: "fills", class: "scroll tall" }),
    el("div", { id: "signals" }));
  const off = live.on((d) => {
    const e = d.engines.find((x) => x.symbol === symbol);
    if (!e) return;
    const u = e.quote ? ` (${e.quote})` : "";
    clear(cards).append(card("status", e.status), card("pid", String(e.pid ?? "–")), card("uptime", e.uptime),
      card("restarts", String(e.restarts)), card("position", fmt.qty(e.position)), card("equity" + u, fmt.num(e.equity)),
      card("PnL" + u, fmt.signed(e.pnl), cls(e.pnl)), card("daily PnL" + u, fmt.signed(e.daily_pnl), cls(e.daily_pnl)),
      card("strategy", e.strategy || "–"), card("model", e.model_version || "–"));
    if (e.market === "perpetual") {  // both directions: side, leverage, where it is liquidated, its margin, funding
      cards.append(card("side", e.side, e.side === "short" ? "neg" : ""), card("leverage", `${e.leverage}x isolated`),
        card("liquidation price", e.liquidation_price ? fmt.qty(e.liquidation_price) : "–"),
        card("margin" + u, e.margin != null ? fmt.num(e.margin) : "–"), card("funding" + u, fmt.signed(e.funding), cls(e.funding)));
    }
  });
  const charts = [];
  try {
    const [c, f, l, ev, sg] = await Promise.all([get(`/engines/${symbol}/candles?limit=1000`), get(`/engines/${symbol}/fills?limit=1000`),
      get(`/engines/${symbol}/logs?lines=200`), get(`/engines/${symbol}/events?limit=200`), get(`/signals/${symbol}?limit=200`)]);
    if (sg.signals.length) {  // a webhook engine: the signals from outside it was sent, newest first
      main.querySelector("#signals").append(el("h2", { text: "Signals from outside (newest first)" }), el("div", { class: "scroll" },
        table([{ label: "received", value: (r) => fmt.time(parseFloat(r.received_at) * 1000) }, { label: "source", value: (r) => r.source },
          { label: "id", value: (r) => r.id }, { label: "target", num: true, value: (r) => fmt.num(parseFloat(r.target)) },
          { label: "expires", value: (r) => (r.expires_at ? fmt.time(parseFloat(r.expires_at) * 1000) : "never") },
          { label: "reason", value: (r) => r.reason || "" }], sg.signals)));
    }
    if (c.candles.length) {
      charts.push(candleChart(candleBox, c.candles, f.fills));
      const t = c.candles.map((x) => x.ts / 1000);
      charts.push(lineChart(posBox, [{ name: "position", t, values: c.candles.map((x) => x.pos) }]));
      charts.push(lineChart(eqBox, [{ name: "equity", t, values: c.candles.map((x) => x.eq) }]));
    } else candleBox.textContent = "No candles traded yet.";
    logBox.append(...l.lines.map(logLine));
    logBox.scrollTop = logBox.scrollHeight;
    eventsBox.append(table([{ label: "time", value: (r) => fmt.time(parseFloat(r.ts) * 1000) }, { label: "event", value: (r) => r.type },
      { label: "detail", value: (r) => r.reason || r.error || r.detail || "" }], [...ev.events].reverse()));
    main.querySelector("#fills").append(table([{ label: "candle", value: (r) => fmt.time(r.ts) }, { label: "side", value: (r) => r.side },
      { label: "qty", num: true, value: (r) => fmt.qty(r.qty) }, { label: "price", num: true, value: (r) => fmt.qty(r.price) },
      { label: "fee", num: true, value: (r) => fmt.num(r.fee, 4) }, { label: "position after", num: true, value: (r) => fmt.qty(r.pos) },
      { label: "reason", value: (r) => r.reason || "" }], [...f.fills].reverse().slice(0, 200)));
  } catch (err) {
    candleBox.textContent = `Could not load: ${err.message}`;
  }
  return () => { off(); charts.forEach((c) => c.remove()); };
}
