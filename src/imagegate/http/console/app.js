// The console's entry: who is signed in, the navigation, and which page a #/hash shows.
import { api, h, field, setCsrf, fail, ApiError } from "./dom.js";
import { t, setLang, getLang } from "./i18n.js";
import { playground, historyPage, accountPage } from "./playground.js";
import { keysPage, channelsPage, usagePage, jobsPage } from "./operator.js";

const PAGES = {
  key: { playground: (s, m) => playground(s, m), history: (s, m) => historyPage(m), account: (s, m) => accountPage(s, m) },
  operator: { keys: (s, m) => keysPage(m), channels: (s, m) => channelsPage(m), usage: (s, m) => usagePage(m), jobs: (s, m) => jobsPage(m) },
};
const OPERATOR_PAGES = Object.keys(PAGES.operator);
let session = null;

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signout = document.getElementById("signout");
const lang = document.getElementById("lang");

function signInForm() {
  const key = h("input", { type: "password", required: true, autocomplete: "off", spellcheck: false });
  const form = h("form.card.signin", { onsubmit: async (event) => {
    event.preventDefault();
    try {
      session = await api("POST", "/session", { key: key.value.trim() });
      key.value = "";
      setCsrf(session.csrf_token);
      location.hash = session.role === "operator" ? "#/keys" : "#/playground";
      render();
    } catch (error) { fail(error); }
  } }, h("h1", { text: t("signin_title") }), h("p.muted", { text: t("signin_help") }), field(t("key"), key),
    h("button.primary", { type: "submit", text: t("signin") }));
  nav.replaceChildren(); who.textContent = ""; signout.hidden = true;
  document.getElementById("toast").className = "";
  main.replaceChildren(form);
  key.focus();
}

async function render() {
  document.title = `imagegate · ${t(current() || "signin_title")}`;
  signout.textContent = t("signout");
  if (!session) return signInForm();
  const pages = PAGES[session.role];
  let page = current();
  nav.replaceChildren(...Object.keys(pages).map((name) =>
    h("a", { href: `#/${name}`, text: t(name), "aria-current": name === page ? "page" : undefined })));
  who.textContent = session.role === "operator" ? t("operator") : `${session.key.name} (${session.key.prefix}…)`;
  signout.hidden = false;
  if (!pages[page]) {
    if (OPERATOR_PAGES.includes(page)) {
      main.replaceChildren(h("section.card", {}, h("h2", { text: "403" }), h("p", { text: t("forbidden") })));
      return;
    }
    page = Object.keys(pages)[0];
    history.replaceState(null, "", `#/${page}`);
    return render();
  }
  try { await pages[page](session, main); } catch (error) {
    if (error instanceof ApiError && error.status === 401) { session = null; return signInForm(); }
    main.replaceChildren(h("section.card", {}, h("h2", { text: error.status ? String(error.status) : t("error") }), h("p", { text: error.message })));
  }
  main.focus({ preventScroll: true });
}

function current() { return location.hash.replace(/^#\/?/, "") || null; }

signout.addEventListener("click", async () => {
  try { await api("DELETE", "/session"); } catch (error) { fail(error); }
  session = null; setCsrf(""); location.hash = ""; render();
});
lang.addEventListener("change", () => { setLang(lang.value); render(); });
window.addEventListener("hashchange", render);

setLang(getLang());
lang.value = getLang();
try {
  session = await api("GET", "/session");
  if (session.signed_in) setCsrf(session.csrf_token); else session = null;
} catch { session = null; }
render();
