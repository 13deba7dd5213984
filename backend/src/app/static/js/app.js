// The dashboard: a hash router over small page modules, one live fleet feed shared by every page.
import { stream, token } from "./api.js";
import { clear } from "./dom.js";
import * as fleet from "./pages/fleet.js";
import * as portfolio from "./pages/portfolio.js";
import * as symbol from "./pages/symbol.js";
import * as risk from "./pages/risk.js";
import * as models from "./pages/models.js";
import * as backtests from "./pages/backtests.js";
import * as parity from "./pages/parity.js";

const listeners = new Set();
const live = { last: null, on: (f) => { listeners.add(f); if (live.last) f(live.last); return () => listeners.delete(f); } };

const routes = [
  [/^#?\/?$/, fleet, "fleet"],
  [/^#\/portfolio$/, portfolio, "portfolio"],
  [/^#\/symbol\/([A-Z0-9]{2,20})$/, symbol, "fleet"],
  [/^#\/parity\/([A-Z0-9]{2,20})$/, parity, "fleet"],
  [/^#\/risk$/, risk, "risk"],
  [/^#\/models$/, models, "models"],
  [/^#\/backtests$/, backtests, "backtests"],
  [/^#\/backtests\/([0-9a-f,]+)$/, backtests, "backtests"],
];

let cleanup = null;
async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  const main = clear(document.getElementById("main"));
  const hash = location.hash || "#/";
  for (const [re, page, nav] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === nav));
    try {
      cleanup = (await page.render(main, live, ...m.slice(1))) || null;
    } catch (e) {  // e.g. 401 when the API listens beyond loopback and no token was entered yet
      main.textContent = `Could not load this page: ${e.detail || e.message}` + (e.status === 401 ? " (enter the API token, top right)" : "");
    }
    return;
  }
  main.textContent = "Not found.";
}

function banner(data) {
  const b = document.getElementById("banner");
  b.hidden = !data.global_stop;
  b.textContent = data.global_stop ? `GLOBAL STOP active: ${data.global_stop_reason || ""} — entries refused, positions closed (Risk page to clear)` : "";
}

function setupToken() {
  const d = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  const button = document.getElementById("token-button");
  const label = () => { button.textContent = token.get() ? "API token ✓" : "API token"; };
  button.addEventListener("click", () => { input.value = ""; d.showModal(); });
  d.addEventListener("close", () => {
    if (d.returnValue === "save" && input.value) token.set(input.value.trim());
    if (d.returnValue === "clear") token.set("");
    input.value = "";
    label();
  });
  label();
}

setupToken();
stream("/stream/fleet", (name, data) => {
  if (name !== "fleet" || data.error) return;
  live.last = data;
  banner(data);
  listeners.forEach((f) => f(data));
}, (on) => {
  const s = document.getElementById("live");
  s.textContent = on ? "live" : "offline";
  s.className = "live " + (on ? "on" : "off");
});
window.addEventListener("hashchange", route);
route();
