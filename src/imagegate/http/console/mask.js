// The mask painter: the image under a canvas; brush strokes mark the area to edit. The mask sent
// is a PNG of the image's size with alpha: transparent where painted (OpenAI's convention: the
// transparent area is what the edit may change), opaque elsewhere.
import { h, field } from "./dom.js";
import { t } from "./i18n.js";

export class MaskPainter {
  constructor() {
    this.image = h("img.maskbase", { alt: "" });
    this.canvas = h("canvas.maskpaint", { "aria-label": t("mask"), role: "img" });
    this.mode = "brush";
    this.size = h("input", { type: "range", min: "4", max: "160", value: "48" });
    this.painted = false;
    const tool = (mode) => h("button.tool", {
      type: "button", text: t(mode), "aria-pressed": String(mode === this.mode),
      onclick: (event) => {
        this.mode = mode;
        for (const b of event.target.parentNode.querySelectorAll(".tool")) b.setAttribute("aria-pressed", String(b === event.target));
      },
    });
    this.node = h("div.mask", { hidden: true },
      h("div.maskstage", {}, this.image, this.canvas),
      h("div.row", { role: "toolbar", "aria-label": t("mask") }, tool("brush"), tool("eraser"),
        h("button", { type: "button", text: t("clear"), onclick: () => this.clear() }),
        field(t("brush_size"), this.size)),
      h("small", { text: t("mask_help") }));
    let drawing = false;
    const at = (event) => {
      const box = this.canvas.getBoundingClientRect();
      return [(event.clientX - box.left) * this.canvas.width / box.width, (event.clientY - box.top) * this.canvas.height / box.height];
    };
    this.canvas.addEventListener("pointerdown", (event) => { drawing = true; this.canvas.setPointerCapture(event.pointerId); this.paint(...at(event)); });
    this.canvas.addEventListener("pointermove", (event) => { if (drawing) this.paint(...at(event)); });
    this.canvas.addEventListener("pointerup", () => { drawing = false; });
  }

  load(file) {
    const url = URL.createObjectURL(file);
    this.image.onload = () => {
      this.canvas.width = this.image.naturalWidth;
      this.canvas.height = this.image.naturalHeight;
      this.clear();
      this.node.hidden = false;
    };
    this.image.src = url;
  }

  clear() {
    this.canvas.getContext("2d").clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.painted = false;
  }

  paint(x, y) {
    const ctx = this.canvas.getContext("2d");
    const scale = this.canvas.width / (this.canvas.getBoundingClientRect().width || this.canvas.width);
    ctx.globalCompositeOperation = this.mode === "eraser" ? "destination-out" : "source-over";
    ctx.fillStyle = "rgba(79, 109, 245, 0.55)";
    ctx.beginPath();
    ctx.arc(x, y, (Number(this.size.value) * scale) / 2, 0, Math.PI * 2);
    ctx.fill();
    if (this.mode === "brush") this.painted = true;
  }

  // The mask PNG, or null when nothing is painted (then the whole image may change).
  async blob() {
    if (!this.painted || !this.canvas.width) return null;
    // The strokes are drawn translucent to show the image through them; the mask is all or
    // nothing: any painted pixel fully transparent, every other one opaque black.
    const w = this.canvas.width, hgt = this.canvas.height;
    const strokes = this.canvas.getContext("2d").getImageData(0, 0, w, hgt).data;
    const out = h("canvas", { width: w, height: hgt });
    const ctx = out.getContext("2d");
    const mask = ctx.createImageData(w, hgt);
    for (let i = 3; i < strokes.length; i += 4) mask.data[i] = strokes[i] > 0 ? 0 : 255;
    ctx.putImageData(mask, 0, 0);
    return new Promise((resolve) => out.toBlob(resolve, "image/png"));
  }
}
