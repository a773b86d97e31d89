// A key holder's pages: the playground (generate and edit, streamed), history and account.
import { api, h, field, select, fail, usd, when } from "./dom.js";
import { t } from "./i18n.js";
import { MaskPainter } from "./mask.js";

// The guide's sizes: OpenAI's three, and the social platforms' (client/recipes.py PLATFORM_SIZES).
const SIZES = [
  ["auto", "auto"], ["1024x1024", "1024×1024 square"], ["1536x1024", "1536×1024 landscape"],
  ["1024x1536", "1024×1536 portrait"], ["1080x1080", "Instagram post 1080×1080"],
  ["1080x1920", "Instagram story 1080×1920"], ["1200x630", "Facebook post 1200×630"],
  ["1200x675", "X / Twitter post 1200×675"], ["1200x627", "LinkedIn post 1200×627"],
];
// The recipes of client/recipes.py as one-click presets: their sizes, quality, format, background.
const RECIPES = [
  { id: "logo", prompt: "Design a logo for Aurora Coffee\n- Style: minimal, flat vector\n- Include company name in the design", size: "1024x1024", quality: "high", output_format: "png" },
  { id: "social", prompt: "A bright social media graphic announcing a summer sale\n- Bold headline space\n- Warm colours", size: "1080x1080", quality: "medium" },
  { id: "story", prompt: "A vertical story graphic for a product launch, phone wallpaper style", size: "1080x1920", quality: "medium" },
  { id: "diagram", prompt: "A clean tutorial diagram in 3 numbered steps: how to brew pour-over coffee", size: "1200x675", quality: "high" },
  { id: "mockup", prompt: "A mobile app screen mockup for a fitness tracker\n- Features: daily steps, heart rate, weekly chart\n- Style: clean, light theme", size: "1080x1920", quality: "high", output_format: "png" },
  { id: "game", prompt: "Game item: a glowing crystal sword, pixel art style, fantasy theme, isolated", size: "1024x1024", quality: "medium", background: "transparent", output_format: "png" },
  { id: "avatar", prompt: "A friendly profile avatar of a person with curly hair and glasses, flat illustration", size: "1024x1024", quality: "high" },
];

export function playground(session, main) {
  const f = {
    prompt: h("textarea", { rows: 4, required: true, value: "a red fox in a blue forest" }),
    model: select(session.models.map((m) => [m, m]), session.models.includes("gpt-image-1") ? "gpt-image-1" : session.models[0]),
    size: select(SIZES, "1024x1024"),
    quality: select([["auto", t("auto")], ["low", "low"], ["medium", "medium"], ["high", "high"]], "auto"),
    output_format: select([["png", "png"], ["jpeg", "jpeg"], ["webp", "webp"]], "png"),
    background: select([["auto", t("auto")], ["opaque", t("opaque")], ["transparent", t("transparent")]], "auto"),
    n: h("input", { type: "number", min: "1", max: "10", value: "1" }),
    seed: h("input", { type: "number", min: "0", inputmode: "numeric" }),
    stream: h("input", { type: "checkbox", checked: true }),
  };
  const mode = select([["generate", t("mode_generate")], ["edit", t("mode_edit")]], "generate");
  const files = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp", multiple: true });
  const painter = new MaskPainter();
  const editBox = h("div.editbox", { hidden: true }, field(t("images_in"), files), painter.node);
  files.addEventListener("change", () => { if (files.files[0]) painter.load(files.files[0]); });
  mode.addEventListener("change", () => { editBox.hidden = mode.value !== "edit"; go.textContent = t(mode.value === "edit" ? "edit" : "generate"); });
  const results = h("div.results", { "aria-live": "polite" });
  const summary = h("div.summary");
  const go = h("button.primary", { type: "submit", text: t("generate") });

  const presets = h("div.presets", { role: "group", "aria-label": t("recipes") }, RECIPES.map((r) =>
    h("button.chip", { type: "button", text: t(`recipe_${r.id}`), onclick: () => {
      f.prompt.value = r.prompt; f.size.value = r.size; f.quality.value = r.quality;
      f.output_format.value = r.output_format || "png"; f.background.value = r.background || "auto";
    } })));

  const form = h("form.card.controls", { onsubmit: async (event) => {
    event.preventDefault();
    go.disabled = true; go.textContent = t("generating");
    results.replaceChildren(); summary.replaceChildren();
    try { await run(); } catch (error) { fail(error); }
    go.disabled = false; go.textContent = t(mode.value === "edit" ? "edit" : "generate");
  } },
    h("h2", { text: t("playground") }), field(t("mode"), mode), h("h3", { text: t("presets") }), presets,
    field(t("prompt"), f.prompt), editBox,
    h("div.grid2", {}, field(t("model"), f.model), field(t("size"), f.size), field(t("quality"), f.quality),
      field(t("format"), f.output_format), field(t("background"), f.background), field(t("n"), f.n), field(t("seed"), f.seed)),
    h("div.check", {}, f.stream, h("label", { for: (f.stream.id = "stream"), text: t("stream") })), go);

  function params() {
    const p = { model: f.model.value, prompt: f.prompt.value, size: f.size.value, quality: f.quality.value,
      output_format: f.output_format.value, background: f.background.value, n: Number(f.n.value) || 1 };
    if (f.seed.value !== "") p.seed = Number(f.seed.value);
    if (f.stream.checked) { p.stream = true; p.partial_images = 2; }
    return p;
  }

  async function run() {
    const p = params();
    let response;
    if (mode.value === "edit") {
      if (!files.files.length) throw new Error(t("images_in"));
      const body = new FormData();
      for (const [k, v] of Object.entries(p)) body.append(k, String(v));
      for (const file of files.files) body.append(files.files.length > 1 ? "image[]" : "image", file);
      const mask = await painter.blob();
      if (mask) body.append("mask", mask, "mask.png");
      response = await api("POST", "/images/edits", body, { raw: true });
    } else {
      response = await api("POST", "/images/generations", p, { raw: true });
    }
    const requestId = response.headers.get("x-request-id");
    const type = response.headers.get("content-type") || "";
    const mime = `image/${p.output_format}`;
    let last = null;
    if (type.startsWith("text/event-stream")) {
      for await (const event of sse(response)) {
        if (event.type?.endsWith("partial_image")) show(event.b64_json, mime, `${t("partial")} ${event.partial_image_index + 1}`, true);
        else if (event.type?.endsWith("completed")) { show(event.b64_json, mime, t("result")); last = event; }
        else if (event.error) throw new Error(event.error.message);
      }
    } else {
      last = await response.json();
      for (const item of last.data) show(item.b64_json, mime, t("result"), false, item.url);
    }
    await describe(last, requestId);
  }

  // One figure per image: its partial images replace each other, then the final one replaces them.
  function show(b64, mime, label, partial = false, url = null) {
    const src = b64 ? `data:${mime};base64,${b64}` : url;
    let box = results.lastChild;
    if (!box || !box.classList.contains("partial")) { box = h("figure.shot"); results.append(box); }
    box.className = partial ? "shot partial" : "shot";
    box.replaceChildren(h("img", { src, alt: `${label}: ${f.prompt.value}` }), h("figcaption", { text: label }));
  }

  async function describe(last, requestId) {
    const rows = [];
    if (last?.usage) rows.push([t("usage_tokens"), `${last.usage.input_tokens ?? "—"} in · ${last.usage.output_tokens ?? "—"} out`]);
    if (last && "seed" in last) rows.push([t("seed_short"), String(last.seed)]);
    const history = await api("GET", "/history?limit=5").catch(() => null);
    const entry = history?.data.find((e) => e.request_id === requestId);
    if (entry) rows.unshift([t("cost"), usd(entry.cost_usd)]);
    summary.replaceChildren(h("dl.facts", {}, rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })])));
    const account = await api("GET", "/account").catch(() => null);
    if (account) balance.textContent = `${t("balance")}: ${usd(account.balance_usd)}`;
  }

  const balance = h("p.balance", { text: `${t("balance")}: ${usd(session.key.balance_usd)}` });
  main.replaceChildren(h("div.split", {}, form, h("section.card.output", { "aria-label": t("result") }, h("h2", { text: t("result") }), balance, results, summary)));
}

// Server-sent events read from fetch's body stream (EventSource cannot POST nor send the header).
async function* sse(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (data && data !== "[DONE]") yield JSON.parse(data);
    }
  }
}

export async function historyPage(main) {
  const list = await api("GET", "/history?limit=50");
  const items = list.data.map((e) => h("article.card.entry", {},
    h("div.thumbs", {}, e.images.map((img) => img.url ? h("a", { href: img.url, target: "_blank", rel: "noopener" }, h("img", { src: img.url, alt: e.prompt || "", loading: "lazy" })) : h("span.muted", { text: t("expired") }))),
    h("div", {}, h("p.prompt", { text: e.prompt || "—" }),
      h("p.muted", { text: `${t(e.inputs.length ? "mode_edit" : "mode_generate")} · ${when(e.created_at)} · ${e.model} · ${e.params.size || ""} · ${usd(e.cost_usd)}` }))));
  main.replaceChildren(h("section", {}, h("h2", { text: t("history") }), items.length ? items : h("p.muted", { text: t("no_history") })));
}

export async function accountPage(session, main) {
  const a = await api("GET", "/account");
  const limits = session.key?.limits || {};
  const facts = [[t("prefix"), a.key], [t("tier"), a.tier], [t("balance"), usd(a.balance_usd)], [t("spent"), usd(a.spent_usd)],
    [t("credit"), usd(a.credited_usd)],
    [t("requests"), a.requests], [t("images"), a.images],
    ...Object.entries(limits).map(([k, v]) => [`${t("limits")}: ${k}`, v ?? t("none")])];
  main.replaceChildren(h("section.card", {}, h("h2", { text: t("account") }),
    h("dl.facts", {}, facts.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v === undefined ? "—" : String(v) })]))));
}
