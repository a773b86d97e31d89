// The operator's pages: keys, channels, usage charts, jobs. Each calls the console API, which
// calls the admin API's own code.
import { api, h, field, select, fail, usd, when, toast } from "./dom.js";
import { t } from "./i18n.js";
import { barChart } from "./chart.js";

const PROVIDERS = ["openai", "azure", "gemini", "vertex", "seedream", "xai"];

function table(head, rows) {
  return h("div.tablewrap", {}, h("table", {}, h("thead", {}, h("tr", {}, head.map((x) => h("th", { scope: "col", text: x })))),
    h("tbody", {}, rows)));
}

export async function keysPage(main) {
  const f = {
    name: h("input", { required: true, maxLength: 100, autocomplete: "off" }),
    tier: select(["free", "tier1", "tier2", "internal"].map((x) => [x, x]), "free"),
    credit_usd: h("input", { type: "number", min: "0", step: "0.01", value: "5" }),
    rpm: h("input", { type: "number", min: "1" }), rpd: h("input", { type: "number", min: "1" }),
    ipm: h("input", { type: "number", min: "1" }), concurrency: h("input", { type: "number", min: "1" }),
    expires: h("input", { type: "date" }),
    multiplier: h("input", { type: "number", min: "0", step: "0.05", placeholder: "1" }),
  };
  const secret = h("div.secret", { hidden: true });
  const form = h("form.card", { onsubmit: async (event) => {
    event.preventDefault();
    const body = { name: f.name.value, tier: f.tier.value };
    if (f.credit_usd.value !== "") body.credit_usd = f.credit_usd.value;
    for (const k of ["rpm", "rpd", "ipm", "concurrency"]) if (f[k].value) body[k] = Number(f[k].value);
    if (f.multiplier.value) body.multiplier = f.multiplier.value;
    if (f.expires.value) body.expires_at = Date.parse(`${f.expires.value}T00:00:00Z`) / 1000;
    try {
      const made = await api("POST", "/keys", body);
      const code = h("code.newkey", { text: made.secret });
      secret.replaceChildren(h("p", { text: t("new_key_once") }), code,
        h("button", { type: "button", text: t("copy"), onclick: () => navigator.clipboard?.writeText(made.secret) }));
      secret.hidden = false;
      form.reset();
      await refresh();
    } catch (error) { fail(error); }
  } }, h("h2", { text: t("create_key") }),
    h("div.grid2", {}, field(t("name"), f.name), field(t("tier"), f.tier), field(t("credit"), f.credit_usd),
      field(t("rpm"), f.rpm), field(t("rpd"), f.rpd), field(t("ipm"), f.ipm), field(t("concurrency"), f.concurrency), field(t("expires"), f.expires), field(t("multiplier"), f.multiplier)),
    h("button.primary", { type: "submit", text: t("create_key") }), secret);
  const body = h("div");
  async function refresh() {
    const data = (await api("GET", "/keys")).data;
    body.replaceChildren(table([t("name"), t("prefix"), t("tier"), t("balance"), t("status"), t("expires"), t("actions")],
      data.map((k) => {
        const amount = h("input.small", { type: "number", min: "0.01", step: "0.01", value: "10", "aria-label": `${t("amount")} ${k.name}` });
        return h("tr", {}, h("td", { text: k.name }), h("td", {}, h("code", { text: k.prefix })), h("td", { text: k.tier }),
          h("td", { text: usd(k.balance_usd) }), h("td", {}, h(`span.badge.${k.status}`, { text: k.status })), h("td", { text: when(k.expires_at) }),
          h("td.actions", {}, amount,
            h("button", { type: "button", text: t("topup"), onclick: () => act(() => api("POST", `/keys/${k.id}/credits`, { amount_usd: amount.value })) }),
            k.status === "active" ? h("button.danger", { type: "button", text: t("revoke"), onclick: () => confirm(t("confirm_revoke")) && act(() => api("DELETE", `/keys/${k.id}`)) }) : null));
      })));
  }
  async function act(call) { try { await call(); toast(t("saved")); await refresh(); } catch (error) { fail(error); } }
  await refresh();
  main.replaceChildren(h("h2", { text: t("keys") }), form, h("section.card", {}, body));
}

export async function channelsPage(main) {
  const f = {
    name: h("input", { required: true, maxLength: 100 }),
    provider: select(PROVIDERS.map((x) => [x, x]), "openai"),
    base_url: h("input", { type: "url", placeholder: "https://api.openai.com/v1" }),
    api_key: h("input", { type: "password", required: true, autocomplete: "off" }),
    models: h("input", { required: true, value: "gpt-image-1" }),
    priority: h("input", { type: "number", value: "0" }),
  };
  const form = h("form.card", { onsubmit: async (event) => {
    event.preventDefault();
    const body = { name: f.name.value, provider: f.provider.value, api_key: f.api_key.value,
      models: f.models.value.split(",").map((m) => m.trim()).filter(Boolean), priority: Number(f.priority.value) || 0 };
    if (f.base_url.value) body.base_url = f.base_url.value;
    try { await api("POST", "/channels", body); form.reset(); toast(t("saved")); await refresh(); } catch (error) { fail(error); }
  } }, h("h2", { text: t("add_channel") }),
    h("div.grid2", {}, field(t("name"), f.name), field(t("provider"), f.provider), field(t("base_url"), f.base_url),
      field(t("api_key"), f.api_key), field(t("models"), f.models), field(t("priority"), f.priority)),
    h("button.primary", { type: "submit", text: t("add_channel") }));
  const body = h("div");
  const margins = h("div");
  async function refresh() {
    const [data, usage] = await Promise.all([api("GET", "/channels"), api("GET", "/usage?by=channel")]);
    const spend = {};
    for (const row of usage.data) {
      const name = row.channel ?? "local";
      spend[name] ??= { cost: 0, paid: 0, margin: 0 };
      spend[name].cost += Number(row.cost_usd); spend[name].paid += Number(row.upstream_cost_usd); spend[name].margin += Number(row.margin_usd);
    }
    body.replaceChildren(table([t("name"), t("provider"), t("models_col"), t("status"), t("breaker"), t("why_disabled"), t("channel_cost"), t("actions")],
      data.data.map((c) => h("tr", {}, h("td", { text: c.name }), h("td", { text: c.provider }), h("td", { text: c.models.join(", ") }),
        h("td", {}, h(`span.badge.${c.enabled ? "active" : "revoked"}`, { text: t(c.enabled ? "enabled" : "disabled") })),
        h("td", { text: c.breaker ? c.breaker.state + (c.breaker.reason ? ` (${c.breaker.reason})` : "") : "—" }),
        h("td", { text: c.disabled_reason || c.error || "—" }),
        h("td", { text: spend[c.name] ? usd(spend[c.name].paid) : usd(0) }),
        h("td.actions", {},
          h("button", { type: "button", text: t("test"), onclick: async (event) => {
            event.target.disabled = true;
            try { const r = await api("POST", `/channels/${c.id}/test`); toast(r.ok ? t("test_ok") : t("test_failed") + r.error, !r.ok); } catch (error) { fail(error); }
            event.target.disabled = false;
          } }),
          h("button", { type: "button", text: t(c.enabled ? "disable" : "enable"), onclick: async () => {
            try { await api("PATCH", `/channels/${c.id}`, { enabled: !c.enabled }); await refresh(); } catch (error) { fail(error); }
          } }))))));
    const names = Object.keys(spend);
    margins.replaceChildren(names.length ? barChart(t("per_channel_margin"), names, [
      { name: t("spend"), values: names.map((n) => spend[n].cost) },
      { name: t("operator_cost"), values: names.map((n) => spend[n].paid) },
      { name: t("margin"), values: names.map((n) => spend[n].margin) }], usd) : h("p.muted", { text: t("no_data") }));
  }
  await refresh();
  main.replaceChildren(h("h2", { text: t("channels") }), form, h("section.card", {}, body), h("section.card", {}, margins));
}

export async function usagePage(main) {
  const [byKey, byChannel, byModel, errors, latency, keys] = await Promise.all(
    ["key", "channel", "model", "error", "latency"].map((by) => api("GET", `/usage?by=${by}`)).concat(api("GET", "/keys")));
  const keyName = Object.fromEntries(keys.data.map((k) => [k.id, k.name]));
  const days = [...new Set(byKey.data.map((r) => r.day))].sort();
  const sum = (rows, pick, group, labels) => labels.map((l) => rows.filter((r) => group(r) === l).reduce((a, r) => a + Number(pick(r) || 0), 0));
  const charts = [];
  if (!days.length) charts.push(h("p.muted", { text: t("no_data") }));
  else {
    charts.push(barChart(`${t("requests")} / ${t("images")} — ${t("by_day")}`, days, [
      { name: t("requests"), values: sum(byKey.data, (r) => r.requests, (r) => r.day, days) },
      { name: t("images"), values: sum(byKey.data, (r) => r.images, (r) => r.day, days) },
      { name: t("failed"), values: sum(byKey.data, (r) => r.failed, (r) => r.day, days) }]));
    charts.push(barChart(`${t("spend")} / ${t("operator_cost")} / ${t("margin")} — ${t("by_day")}`, days, [
      { name: t("spend"), values: sum(byChannel.data, (r) => r.cost_usd, (r) => r.day, days) },
      { name: t("operator_cost"), values: sum(byChannel.data, (r) => r.upstream_cost_usd, (r) => r.day, days) },
      { name: t("margin"), values: sum(byChannel.data, (r) => r.margin_usd, (r) => r.day, days) }], usd));
    const ids = [...new Set(byKey.data.map((r) => r.key_id))];
    charts.push(barChart(`${t("spend")} — ${t("by_key")}`, ids.map((i) => keyName[i] || `#${i}`), [
      { name: t("spend"), values: sum(byKey.data, (r) => r.cost_usd, (r) => r.key_id, ids) },
      { name: t("operator_cost"), values: sum(byKey.data, (r) => r.upstream_cost_usd, (r) => r.key_id, ids) }], usd));
    const channels = [...new Set(byChannel.data.map((r) => r.channel ?? "local"))];
    charts.push(barChart(`${t("margin")} — ${t("by_channel")}`, channels, [
      { name: t("spend"), values: sum(byChannel.data, (r) => r.cost_usd, (r) => r.channel ?? "local", channels) },
      { name: t("operator_cost"), values: sum(byChannel.data, (r) => r.upstream_cost_usd, (r) => r.channel ?? "local", channels) },
      { name: t("margin"), values: sum(byChannel.data, (r) => r.margin_usd, (r) => r.channel ?? "local", channels) }], usd));
    const models = [...new Set(byModel.data.map((r) => r.model ?? "—"))];
    charts.push(barChart(`${t("spend")} / ${t("operator_cost")} — ${t("by_model")}`, models, [
      { name: t("spend"), values: sum(byModel.data, (r) => r.cost_usd, (r) => r.model ?? "—", models) },
      { name: t("operator_cost"), values: sum(byModel.data, (r) => r.upstream_cost_usd, (r) => r.model ?? "—", models) }], usd));
    const code = (r) => `${r.status} ${r.error_code ?? ""}`.trim();
    const codes = [...new Set(errors.data.map(code))];
    charts.push(codes.length
      ? barChart(`${t("failed")} — ${t("by_code")}`, codes, [{ name: t("requests"), values: sum(errors.data, (r) => r.requests, code, codes) }])
      : h("figure.chartbox", {}, h("figcaption", { text: `${t("failed")} — ${t("by_code")}` }), h("p.muted", { text: t("no_errors") })));
    const lat = latency.data.map((r) => r.day);
    const ms = (v) => (v >= 1000 ? `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)} s` : `${Math.round(v)} ms`);
    charts.push(barChart(`${t("latency")} — ${t("by_day")}`, lat, ["p50_ms", "p90_ms", "p99_ms"].map((p) => (
      { name: p.replace("_ms", ""), values: latency.data.map((r) => r[p] ?? 120000) })), ms));
  }
  main.replaceChildren(h("h2", { text: t("usage") }), h("section.charts", {}, charts));
}

export async function jobsPage(main) {
  const counts = (await api("GET", "/jobs")).counts;
  const rows = Object.entries(counts).map(([status, n]) => h("tr", {}, h("td", { text: status }), h("td", { text: String(n) })));
  main.replaceChildren(h("h2", { text: t("jobs_queue") }), h("section.card", {},
    rows.length ? table([t("status"), t("jobs")], rows) : h("p.muted", { text: t("no_data") })));
}
