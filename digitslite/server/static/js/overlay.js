// The inference viewer: each result's prediction (and ground truth) composited over its input on a
// canvas from class-index images, with opacity, outline-only, hidden classes, and a legend that
// lights up the class under the cursor (and the pixels of the class under the pointer in the legend).

const legendItems = [...document.querySelectorAll("#legend li")];
const colours = new Map(legendItems.map((item) => [Number(item.dataset.class), item.dataset.colour.split(",").map(Number)]));
const names = new Map(legendItems.map((item) => [Number(item.dataset.class), item.querySelector(".legend-name").textContent]));
const readout = document.getElementById("hover-readout");
const settings = { opacity: 0.5, outline: false, hidden: new Set(), highlighted: null };
const UNKNOWN = [128, 128, 128];
const layers = []; // {canvas, input: ImageData, indices: Uint8Array, edges: Uint8Array}
let drawing = false;

// The image's exact pixel values: class indices must not be touched by colour management.
async function pixels(url) {
  const response = await fetch(url);
  const bitmap = await createImageBitmap(await response.blob(), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  return context.getImageData(0, 0, canvas.width, canvas.height);
}

// Pixels that touch another class (4-neighbourhood), for outline-only.
function edgesOf(indices, width, height) {
  const edges = new Uint8Array(indices.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const c = indices[i];
      if ((x > 0 && indices[i - 1] !== c) || (x < width - 1 && indices[i + 1] !== c) ||
          (y > 0 && indices[i - width] !== c) || (y < height - 1 && indices[i + width] !== c)) edges[i] = 1;
    }
  }
  return edges;
}

function draw(layer) {
  const { canvas, input, indices, edges } = layer;
  const out = new ImageData(input.width, input.height);
  const source = input.data;
  const target = out.data;
  const { opacity, outline, hidden, highlighted } = settings;
  for (let i = 0; i < indices.length; i++) {
    const c = indices[i];
    const p = 4 * i;
    let alpha = hidden.has(c) || (outline && !edges[i]) ? 0 : opacity;
    if (alpha && highlighted !== null) alpha = c === highlighted ? Math.max(opacity, 0.85) : opacity * 0.2;
    const colour = colours.get(c) || UNKNOWN;
    target[p] = source[p] + alpha * (colour[0] - source[p]);
    target[p + 1] = source[p + 1] + alpha * (colour[1] - source[p + 1]);
    target[p + 2] = source[p + 2] + alpha * (colour[2] - source[p + 2]);
    target[p + 3] = 255;
  }
  canvas.getContext("2d").putImageData(out, 0, 0);
}

function redraw() {
  if (drawing) return;
  drawing = true;
  requestAnimationFrame(() => {
    drawing = false;
    layers.forEach(draw);
  });
}

function highlightLegend(index) {
  legendItems.forEach((item) => item.classList.toggle("hover", Number(item.dataset.class) === index));
}

function watchPointer(layer, part) {
  const { canvas, indices, input } = layer;
  canvas.addEventListener("mousemove", (event) => {
    const box = canvas.getBoundingClientRect();
    const x = Math.min(input.width - 1, Math.floor((event.clientX - box.left) / box.width * input.width));
    const y = Math.min(input.height - 1, Math.floor((event.clientY - box.top) / box.height * input.height));
    const index = indices[y * input.width + x];
    highlightLegend(index);
    readout.textContent = `${part === "truth" ? "Ground truth" : "Prediction"}: ${names.get(index) ?? `class ${index}`}`;
  });
  canvas.addEventListener("mouseleave", () => {
    highlightLegend(null);
    readout.textContent = "";
  });
}

async function load(article) {
  const base = `/pages-api/inference/${document.getElementById("job").dataset.jobId}/images/${article.dataset.number}`;
  const input = await pixels(`${base}/input`);
  for (const canvas of article.querySelectorAll("canvas.overlay")) {
    const classes = await pixels(`${base}/${canvas.dataset.part}`);
    const indices = new Uint8Array(classes.width * classes.height);
    for (let i = 0; i < indices.length; i++) indices[i] = classes.data[4 * i];
    canvas.width = input.width;
    canvas.height = input.height;
    const layer = { canvas, input, indices, edges: edgesOf(indices, input.width, input.height) };
    layers.push(layer);
    draw(layer);
    watchPointer(layer, canvas.dataset.part);
    canvas.dataset.ready = "true";
  }
}

document.getElementById("opacity").addEventListener("input", (event) => {
  settings.opacity = Number(event.target.value) / 100;
  document.getElementById("opacity-value").textContent = `${event.target.value} %`;
  redraw();
});
document.getElementById("outline").addEventListener("change", (event) => {
  settings.outline = event.target.checked;
  redraw();
});
document.getElementById("show-all").addEventListener("click", () => {
  settings.hidden.clear();
  document.querySelectorAll("[data-hide]").forEach((box) => { box.checked = true; });
  redraw();
});
for (const item of legendItems) {
  const index = Number(item.dataset.class);
  item.querySelector("[data-hide]").addEventListener("change", (event) => {
    if (event.target.checked) settings.hidden.delete(index);
    else settings.hidden.add(index);
    redraw();
  });
  item.addEventListener("mouseenter", () => { settings.highlighted = index; redraw(); });
  item.addEventListener("mouseleave", () => { settings.highlighted = null; redraw(); });
}
document.querySelectorAll("article.result").forEach(load);
