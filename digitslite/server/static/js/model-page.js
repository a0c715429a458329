// The model page: live charts, the latest figures, per-class IoU and the confusion matrix of the
// latest test pass, resource usage while it runs, snapshots as they appear, and publishing.
import { api, el, errorOf, percent, rgb } from "./common.js";
import { jobEvents, jobId } from "./job.js";
import { createCharts } from "./sse-charts.js";

const classInfo = JSON.parse(document.getElementById("page-data").textContent) || { classes: [], palette: [] };
const charts = createCharts();
const USAGE_POLL_MS = 2000;
let status = document.getElementById("job").dataset.status;

const setText = (id, text) => { document.getElementById(id).textContent = text; };
const className = (index) => classInfo.classes[index] ?? `class ${index}`;
const colourOf = (index) => classInfo.palette[index] || [128, 128, 128];

function showPerClass(record) {
  setText("per-class-when", `(validation at iteration ${record.iteration})`);
  const rows = record.per_class_iu.map((iou, index) => el("tr", {},
    el("td", {}, el("span", { class: "swatch", style: `background: ${rgb(colourOf(index))}` }), className(index)),
    el("td", { class: "bar-cell" }, el("span", { class: "bar" },
      el("span", { class: "bar-fill", style: `width: ${((iou ?? 0) * 100).toFixed(1)}%; background: ${rgb(colourOf(index))}` }))),
    el("td", { class: "num" }, percent(iou))));
  document.getElementById("per-class-table").replaceChildren(el("div", { class: "table-wrap" },
    el("table", { class: "per-class" },
      el("thead", {}, el("tr", {}, el("th", {}, "Class"), el("th", {}, "IoU"), el("th", { class: "num" }, ""))),
      el("tbody", {}, rows),
      el("tfoot", {}, el("tr", {}, el("th", {}, "mean IU"), el("th", {}), el("th", { class: "num" }, percent(record.mean_iu)))))));
}

// Rows: ground truth, columns: prediction; each cell's shade is its share of the row.
function showConfusion(matrix) {
  const header = el("tr", {}, el("th", {}, "truth \\ predicted"), matrix.map((_, index) => el("th", { title: className(index) }, index)));
  const rows = matrix.map((counts, truth) => {
    const total = counts.reduce((sum, count) => sum + count, 0) || 1;
    return el("tr", {}, el("th", {}, `${truth} ${className(truth)}`), counts.map((count, predicted) => el("td", {
      class: "num heat", title: `${className(truth)} → ${className(predicted)}: ${count} px`,
      style: `--share: ${(count / total).toFixed(3)}`,
    }, percent(count / total, 0))));
  });
  document.getElementById("confusion").replaceChildren(el("table", { class: "confusion" }, el("thead", {}, header), el("tbody", {}, rows)));
  document.getElementById("confusion-card").hidden = false;
}

jobEvents.addEventListener("metrics", (event) => {
  const records = event.detail;
  charts.add(records);
  document.getElementById("no-metrics").hidden = true;
  const train = records.filter((record) => record.phase === "train").at(-1);
  const val = records.filter((record) => record.phase === "val").at(-1);
  if (records.length) showIteration(Math.max(...records.map((record) => record.iteration)));
  if (train) {
    if (typeof train.loss === "number") setText("stat-loss", train.loss.toPrecision(4));
    if (typeof train.images_per_s === "number") setText("stat-speed", train.images_per_s.toFixed(1));
  }
  if (val) {
    if (typeof val.mean_iu === "number") setText("stat-miu", percent(val.mean_iu));
    if (typeof val.ab_auc === "number") setText("stat-auc", percent(val.ab_auc));
    if (typeof val.psnr === "number") setText("stat-psnr", `${val.psnr.toFixed(2)} dB`);
    if (typeof val.colourfulness === "number") {
      setText("stat-colourfulness", `${val.colourfulness.toFixed(1)} (${(val.truth_colourfulness ?? 0).toFixed(1)})`);
    }
    if (Array.isArray(val.per_class_iu)) showPerClass(val);
    if (Array.isArray(val.confusion_matrix)) showConfusion(val.confusion_matrix);
  }
});

async function refreshSnapshots() {
  const box = document.getElementById("snapshots");
  const response = await fetch(box.dataset.refresh);
  if (response.ok) box.innerHTML = await response.text();
}

jobEvents.addEventListener("snapshot", (event) => {
  refreshSnapshots();
  document.querySelectorAll("[data-needs-snapshot]").forEach((node) => { node.hidden = false; });
  document.querySelectorAll("[data-needs-snapshot-enabled]").forEach((node) => { node.disabled = false; });
  offerSnapshot(event.detail.iteration);
  showIteration(event.detail.iteration);
});

// The publish form lists each snapshot once, newest first: the stream replays the snapshots the page
// was rendered with on every (re)connect.
function offerSnapshot(iteration) {
  const select = document.querySelector('#publish-form [name="snapshot"]');
  const options = [...select.options];
  if (options.some((option) => Number(option.value) === iteration)) return;
  const older = options.find((option) => Number(option.value) < iteration);
  const option = el("option", {}, iteration);
  select.insertBefore(option, older || null);
  if (select.options[0] === option) select.value = String(iteration); // the newest is the one offered
}

// The job's iteration: the furthest any news of it reached (progress, a metrics record, a snapshot),
// not only the display-interval points.
const iterationCard = document.getElementById("stat-iteration");
let iteration = -1;
function showIteration(reached) {
  if (!(reached > iteration)) return;
  iteration = reached;
  iterationCard.textContent = iteration;
}

jobEvents.addEventListener("status", (event) => {
  status = event.detail.status;
  const maxIter = Number(iterationCard.dataset.maxIter);
  if (maxIter) showIteration(Math.round(event.detail.progress * maxIter));
});
jobEvents.addEventListener("reset", () => {
  charts.reset();
  iteration = -1; // a resumed run goes back to its snapshot: the replayed records tell where
});
jobEvents.addEventListener("end", refreshSnapshots);

async function pollUsage() {
  if (status !== "running" && status !== "starting") return;
  const result = await api("GET", `/pages-api/jobs/${jobId}/usage`);
  if (!result.ok) return;
  const usage = result.data;
  setText("stat-cpu", usage.cpu_percent === null ? "–" : `${usage.cpu_percent.toFixed(0)} %`);
  setText("stat-memory", usage.memory_bytes ? `${(usage.memory_bytes / 2 ** 20).toFixed(0)} MiB` : "–");
  document.getElementById("stat-gpus-box").hidden = !usage.gpus.length;
  setText("stat-gpus", usage.gpus.map((gpu) =>
    `${gpu.id}: ${gpu.utilization_percent ?? "?"} %, ${gpu.memory_used_mib ?? "?"}/${gpu.memory_total_mib ?? "?"} MiB`).join(" · "));
}
setInterval(pollUsage, USAGE_POLL_MS);
pollUsage();

document.getElementById("publish-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = Object.fromEntries([...new FormData(form).entries()].filter(([, value]) => value !== ""));
  const errorBox = document.getElementById("publish-error");
  const done = document.getElementById("publish-done");
  errorBox.hidden = done.hidden = true;
  const result = await api("POST", `/api/v1/models/${jobId}/publish`, body);
  if (result.ok) {
    done.textContent = `Published as ${result.data.name} in ${result.data.store_dir}.`;
    done.hidden = false;
  } else {
    errorBox.textContent = errorOf(result).message;
    errorBox.hidden = false;
  }
});
