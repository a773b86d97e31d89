// Charts as inline SVG, drawn here: grouped bars over a category axis (days, keys, channels).
import { h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#4f6df5", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6"];

function s(tag, attrs, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

// series: [{name, values: [number per label]}]; format: how a value reads on the axis.
export function barChart(title, labels, series, format = (v) => String(v)) {
  const width = 640, height = 260, left = 64, bottom = 48, top = 16, right = 8;
  const all = series.flatMap((x) => x.values);
  const max = Math.max(...all, 0), min = Math.min(...all, 0);
  const span = max - min || 1;
  const y = (v) => top + (max - v) / span * (height - top - bottom);
  const slot = (width - left - right) / Math.max(labels.length, 1);
  const bar = Math.max(2, (slot * 0.8) / series.length);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" });
  svg.append(s("title", {}, title));
  for (let i = 0; i <= 4; i++) {
    const v = min + (span * i) / 4;
    svg.append(s("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, format(v)));
  }
  labels.forEach((label, i) => {
    series.forEach((one, j) => {
      const v = one.values[i] || 0;
      const x = left + i * slot + slot * 0.1 + j * bar;
      const rect = s("rect", { x, y: Math.min(y(v), y(0)), width: bar - 1, height: Math.max(1, Math.abs(y(v) - y(0))), fill: COLORS[j % COLORS.length] });
      rect.append(s("title", {}, `${label} · ${one.name}: ${format(v)}`));
      svg.append(rect);
    });
    if (labels.length <= 16 || i % Math.ceil(labels.length / 16) === 0) {
      svg.append(s("text", { x: left + i * slot + slot / 2, y: height - bottom + 16, "text-anchor": "middle", class: "axis" }, String(label).slice(0, 18)));
    }
  });
  const legend = h("ul.legend", {}, series.map((one, j) => {
    const swatch = h("span.swatch");
    swatch.style.background = COLORS[j % COLORS.length];
    return h("li", {}, swatch, one.name);
  }));
  return h("figure.chartbox", {}, h("figcaption", { text: title }), svg, legend);
}
