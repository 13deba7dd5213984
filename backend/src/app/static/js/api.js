// The API, same origin. The token lives in this tab's sessionStorage only and goes out as a bearer
// header; never in a URL or a cookie. The live feed is read with fetch (headers allowed), not EventSource.
const KEY = "levibot.token";

export const token = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (t) => (t ? sessionStorage.setItem(KEY, t) : sessionStorage.removeItem(KEY)),
};

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  if (token.get()) h["Authorization"] = "Bearer " + token.get();
  return h;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

function describe(body) {
  if (!body || body.detail === undefined) return JSON.stringify(body);
  if (typeof body.detail === "string") return body.detail;
  return body.detail.map((d) => `${(d.loc || []).filter((x) => x !== "body").join(".")}: ${d.msg}`).join("; ");
}

async function handle(res) {
  let body = null;
  try { body = await res.json(); } catch { body = null; }
  if (!res.ok && res.status !== 202) throw new ApiError(res.status, describe(body));
  return body;
}

export async function get(path) {
  return handle(await fetch(path, { headers: headers(false) }));
}

// Control: refused here, before any request, when no token was entered.
export async function post(path, body) {
  if (!token.get()) throw new ApiError(401, "refused: enter the API token first (button at the top right)");
  return handle(await fetch(path, { method: "POST", headers: headers(true), body: JSON.stringify(body || {}) }));
}

// Server-Sent Events over fetch: calls onEvent(name, data) per event; reconnects after a second.
export function stream(path, onEvent, onState) {
  let stopped = false;
  let ctrl = null;
  async function run() {
    while (!stopped) {
      try {
        ctrl = new AbortController();
        const res = await fetch(path, { headers: headers(false), signal: ctrl.signal });
        if (!res.ok) throw new ApiError(res.status, "stream refused");
        onState(true);
        const reader = res.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const chunk = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let name = "message", data = "";
            for (const line of chunk.split("\n")) {
              if (line.startsWith("event: ")) name = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (data) onEvent(name, JSON.parse(data));
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      onState(false);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  run();
  return () => { stopped = true; if (ctrl) ctrl.abort(); };
}
