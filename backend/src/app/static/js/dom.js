// DOM building with text nodes only: nothing that comes from Redis, logs or the user is ever parsed
// as HTML (no HTML-string assignment anywhere), so a symbol or log line with <script> shows as text.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export const fmt = {
  num: (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? "–" : (Math.abs(x) < 0.5 * 10 ** -d ? 0 : Number(x)).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d })),
  pct: (x, d = 2) => (x === null || x === undefined ? "–" : (100 * x).toFixed(d) + " %"),
  signed: (x, d = 2) => (x === null || x === undefined ? "–" : (x >= 0.5 * 10 ** -d ? "+" : "") + fmt.num(x, d)),
  age: (s) => (s === null || s === undefined ? "–" : s < 10 ? s.toFixed(1) + " s" : Math.round(s) + " s"),
  time: (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19),
  qty: (x) => (x === null || x === undefined ? "–" : Number(x).toPrecision(6).replace(/\.?0+$/, "")),
};

export function cls(x) {
  return x > 0 ? "pos" : x < 0 ? "neg" : "";
}

export function table(columns, rows, rowAttrs) {
  const head = el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : "", text: c.label })));
  const body = rows.map((r) => el("tr", rowAttrs ? rowAttrs(r) : {}, columns.map((c) => {
    const v = c.value(r);
    return el("td", { class: (c.num ? "num " : "") + (c.cls ? c.cls(r) : "") }, v instanceof Node ? v : String(v ?? "–"));
  })));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

export function card(label, value, klass) {
  return el("div", { class: "card" }, el("div", { class: "label", text: label }), el("div", { class: "value " + (klass || ""), text: value }));
}
