// Small helpers shared by the console's pages: element building, the console API, messages.
import { t } from "./i18n.js";

let csrf = "";
export function setCsrf(token) { csrf = token || ""; }

// h("div.card", {onclick}, child, ...): an element with classes, properties and children.
export function h(tag, props, ...children) {
  const [name, ...classes] = tag.split(".");
  const node = document.createElement(name);
  if (classes.length) node.className = classes.join(" ");
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else if (k in node && !k.startsWith("aria") && k !== "for") node[k] = v;
    else node.setAttribute(k === "for" ? "for" : k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let ids = 0;
// A labelled form field: the label's `for` names the input (accessible names for every input).
export function field(label, input, hint) {
  if (!input.id) input.id = `f${++ids}`;
  return h("div.field", {}, h("label", { for: input.id, text: label }), input, hint ? h("small", { text: hint }) : null);
}

export function select(options, value) {
  return h("select", {}, options.map(([v, label]) => h("option", { value: v, text: label, selected: v === value })));
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

// The console API: the session cookie goes along by itself; state-changing calls carry the token.
export async function api(method, path, body, { raw = false } = {}) {
  const headers = {};
  const init = { method, headers, credentials: "same-origin" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const response = await fetch(`/console/api${path}`, init);
  if (raw && response.ok) return response;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export function toast(message, bad = false) {
  const node = document.getElementById("toast");
  node.textContent = message;
  node.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.className = ""; }, 5000);
}

export function fail(error) { toast(`${t("error")}: ${error.message}`, true); }

export function usd(value) {
  const n = Number(value || 0);
  const digits = n === 0 || Math.abs(n) >= 1 ? 2 : Math.abs(n) >= 0.001 ? 3 : 5;
  return `$${n.toFixed(digits)}`;
}

export function when(seconds) { return seconds ? new Date(seconds * 1000).toLocaleString() : "—"; }
