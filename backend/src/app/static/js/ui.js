// Shared UI: the toast, the confirmation dialog, control calls with their result shown.
import { post } from "./api.js";

let toastTimer = null;
export function toast(text, error) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = "toast" + (error ? " error" : "");
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}

export function confirmAction(text) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.returnValue = "";
    d.showModal();
  });
}

// A control call: confirmed first when destructive; the manager's answer (or the refusal) is shown.
export async function act(label, path, body, destructive) {
  if (destructive && !(await confirmAction(`${label}?`))) return null;
  try {
    const res = await post(path, body);
    const detail = res && (res.detail || res.status || (res.cleared !== undefined ? (res.cleared ? "cleared" : "was not set") : ""));
    toast(`${label}: ${detail || "sent"}`, res && res.status === "error");
    return res;
  } catch (e) {
    toast(`${label}: ${e.detail || e.message}`, true);
    return null;
  }
}
