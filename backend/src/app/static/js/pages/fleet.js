// Fleet: one row per engine, updated in place from the live feed; totals in one currency (USD).
import { el, clear, fmt, cls, card } from "../dom.js";
import { act } from "../ui.js";

function actions(e) {
  const path = (a) => `/engines/${encodeURIComponent(e.symbol)}/${a}`;
  return el("span", { class: "actions" },
    el("button", { type: "button", "data-action": "restart", onclick: () => act(`restart ${e.symbol}`, path("restart"), {}, true) }, "restart"),
    e.status === "stopped" || e.status === "failed"
      ? el("button", { type: "button", "data-action": "start", onclick: () => act(`start ${e.symbol}`, path("start"), {}, false) }, "start")
      : el("button", { type: "button", "data-action": "stop", class: "danger", onclick: () => act(`stop ${e.symbol}`, path("stop"), {}, true) }, "stop"));
}

function unit(e) {
  return e.quote ? " " + e.quote : "";
}

// [text, class, title] per cell after the symbol and before the actions: updated in place, so a
// button is never swapped under the pointer by a feed update.
function cells(e) {
  return [
    [e.pid ?? "–", "num"], [e.uptime, ""], [e.restarts, "num"], [e.last_error || "", "err", e.last_error || ""],
    [fmt.age(e.last_heartbeat_age_s), "num"], [e.stalled ? "stalled" : "", e.stalled ? "neg" : ""],
    [fmt.qty(e.position) + (e.market === "perpetual" ? ` ${e.side} ${e.leverage}x` : ""), "num",
      e.liquidation_price ? `liquidation ${fmt.qty(e.liquidation_price)}, funding ${fmt.signed(e.funding)}` : ""],
    [fmt.signed(e.pnl) + unit(e), "num " + cls(e.pnl)],
    [fmt.signed(e.daily_pnl) + unit(e), "num " + cls(e.daily_pnl)], [fmt.num(e.equity) + unit(e), "num"],
    [e.strategy || "", ""], [e.model_version || "", "muted"],
  ];
}

function update(tr, e) {
  const badge = tr.querySelector(".status");
  badge.textContent = e.status;
  badge.className = `status ${e.status}`;
  cells(e).forEach(([text, klass, title], i) => {
    const td = tr.children[i + 2];
    td.textContent = String(text);
    td.className = klass;
    if (title !== undefined) td.title = title;
  });
  const stoppable = !(e.status === "stopped" || e.status === "failed");
  if (tr.dataset.stoppable !== String(stoppable)) {
    tr.dataset.stoppable = String(stoppable);
    clear(tr.lastChild).append(actions(e));
  }
}

function row(e) {
  const tr = el("tr", { "data-symbol": e.symbol },
    el("td", {}, el("a", { href: `#/symbol/${e.symbol}`, text: e.symbol })),
    el("td", {}, el("span", { class: "status" })),
    cells(e).map(() => el("td")), el("td"));
  update(tr, e);
  return tr;
}

const HEAD = ["symbol", "status", "pid", "uptime", "restarts", "last error", "heartbeat", "stalled", "position", "PnL", "daily PnL", "equity", "strategy", "model", ""];

export function render(main, live) {
  const cards = el("div", { class: "cards" });
  const body = el("tbody");
  const rows = new Map();
  const reload = el("button", { type: "button", onclick: () => act("reload config", "/config/reload", {}, false) }, "reload config");
  main.append(el("h1", {}, "Fleet ", reload), cards, el("div", { class: "scroll" }, el("table", { id: "fleet" },
    el("thead", {}, el("tr", {}, HEAD.map((h) => el("th", { text: h })))), body)));
  const off = live.on((d) => {
    clear(cards).append(
      card("engines", `${d.running}/${d.total} running`),
      card("failed", String(d.failed || 0), d.failed ? "neg" : ""),
      card("stalled", String(d.stalled || 0), d.stalled ? "neg" : ""),
      card(`equity (${d.totals.currency})`, fmt.num(d.totals.equity)),
      card(`PnL (${d.totals.currency})`, fmt.signed(d.totals.pnl), cls(d.totals.pnl)),
      card(`daily PnL (${d.totals.currency})`, fmt.signed(d.totals.daily_pnl), cls(d.totals.daily_pnl)));
    if (d.totals.unpriced.length) cards.append(card("not in totals (no USD rate)", d.totals.unpriced.join(", ")));
    const seen = new Set();
    for (const e of d.engines) {
      seen.add(e.symbol);
      const tr = rows.get(e.symbol);
      if (tr) update(tr, e);
      else { rows.set(e.symbol, row(e)); }
    }
    for (const [s, tr] of rows) if (!seen.has(s)) { tr.remove(); rows.delete(s); }
    d.engines.forEach((e, i) => {  // the feed's order; a row moves only when it is out of place
      const tr = rows.get(e.symbol);
      if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    });
  });
  return off;
}
