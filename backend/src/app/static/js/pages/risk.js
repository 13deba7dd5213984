// Risk: the policy engines apply, open slots against the limits, correlation groups, the global stop.
import { get } from "../api.js";
import { el, fmt, card, table } from "../dom.js";
import { act } from "../ui.js";

export async function render(main) {
  const r = await get("/risk");
  const p = r.policy || {};
  const open = Object.entries(r.open_positions);
  const groups = Object.entries(p.correlation_groups || {});
  const inGroup = (g) => open.filter(([, v]) => v.group === g).length;
  const gs = r.global_stop;
  main.append(el("h1", { text: "Risk" }),
    el("div", { class: "cards" },
      card("global stop", gs.active ? `ACTIVE (${gs.day})` : "off", gs.active ? "neg" : "ok"),
      card("open positions", `${open.length} / ${p.max_concurrent_positions ?? "–"}`),
      card("daily loss limit", p.max_daily_loss_pct !== undefined ? `${p.max_daily_loss_pct} %` : "–")),
    gs.active ? el("p", {}, `Reason: ${gs.reason || ""} `, el("button", { type: "button", class: "danger", id: "clear-stop",
      onclick: async () => { if (await act("clear the global stop", "/risk/global-stop/clear", {}, true)) location.reload(); } }, "clear global stop")) : "",
    el("h2", { text: "Open slots" }),
    table([{ label: "symbol", value: ([s]) => s }, { label: "group", value: ([, v]) => v.group || "–" },
      { label: "exposure (USD)", num: true, value: ([, v]) => fmt.num(v.exposure_usd) }], open),
    el("h2", { text: "Correlation groups" }),
    table([{ label: "group", value: ([g]) => g }, { label: "symbols", value: ([, s]) => s.join(", ") },
      { label: "open / limit", num: true, value: ([g]) => `${inGroup(g)} / ${p.max_correlated_positions ?? "–"}` }], groups),
    el("h2", { text: "Policy" }),
    table([{ label: "field", value: ([k]) => k }, { label: "value", value: ([, v]) => (typeof v === "object" ? JSON.stringify(v) : String(v)) }],
      Object.entries(p).filter(([k]) => k !== "correlation_groups")));
  return null;
}
