// Models: the registry's versions and their figures, which one is in production, promotions and
// retrains; promote and rollback go to the manager (confirmed first).
import { get } from "../api.js";
import { el, fmt, table } from "../dom.js";
import { act } from "../ui.js";

export async function render(main) {
  const m = await get("/models");
  const rt = m.retrain || {};
  main.append(el("h1", {}, "Models ", el("button", { type: "button", id: "rollback", class: "danger",
    onclick: async () => { if (await act("roll back to the previous production model", "/models/rollback", {}, true)) location.reload(); } }, "rollback")),
    el("p", {}, "Production: ", el("b", { text: m.current || "none (engines trade the SMA fallback)" })),
    el("h2", { text: "Versions" }),
    table([{ label: "version", value: (v) => v.version }, { label: "", value: (v) => (v.production ? "production" : "") },
      { label: "trained", value: (v) => v.train_date || "–" }, { label: "symbols", value: (v) => (v.symbols || []).join(", ") },
      { label: "data", value: (v) => (v.data_range || []).join(" → ") },
      { label: "test Sharpe", num: true, value: (v) => fmt.num(v.backtest_sharpe) }, { label: "accuracy", num: true, value: (v) => fmt.num(v.accuracy, 3) },
      { label: "max DD", num: true, value: (v) => fmt.pct(v.backtest_max_drawdown) },
      { label: "", value: (v) => (v.production ? "" : el("button", { type: "button", "data-version": v.version,
        onclick: async () => { if (await act(`promote ${v.version}`, "/models/promote", { version: v.version }, true)) location.reload(); } }, "promote")) }],
    m.versions),
    el("h2", { text: "Promotions" }),
    table([{ label: "time", value: (p) => fmt.time(p.at * 1000) }, { label: "from", value: (p) => p.from || "–" },
      { label: "to", value: (p) => p.to }, { label: "reason", value: (p) => p.reason }], m.promotions),
    el("h2", { text: "Nightly retrain" }),
    table([{ label: "field", value: ([k]) => k }, { label: "value", value: ([, v]) => v }],
      Object.entries(rt).filter(([k]) => !k.startsWith("le:")).sort()));
  return null;
}
