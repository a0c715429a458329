// The New dataset form: show the fields that apply, run the Check (the dry run) and render its
// report, and create the dataset through the JSON API.
import { api, clearErrors, el, errorOf, percent, rgb, showError, speak } from "./common.js";

const form = document.getElementById("dataset-form");
const status = document.getElementById("form-status");
const formError = document.getElementById("form-error");
const checkButton = document.getElementById("check-button");

const value = (name) => form.querySelector(`[name="${name}"]:checked`)?.value;
const separateVal = () => document.getElementById("separate-val").checked;

// Fields that only one task reads (from the tasks' records); the other tasks' are hidden and not sent.
const TASK_FIELDS = JSON.parse(form.dataset.taskFields);
const task = () => value("task");

function showApplicable() {
  if (value("source") === "lists" && !TASK_FIELDS[task()].includes("train_list")) form.elements.source.value = "folders";
  const source = value("source");
  const mode = value("label_mode");
  form.querySelectorAll("[data-task]").forEach((node) => { node.hidden = node.dataset.task !== task(); });
  form.querySelectorAll("[data-space]").forEach((node) => {
    node.hidden = node.dataset.space !== form.elements.space.value;
  });
  form.querySelectorAll("[data-source]").forEach((node) => { node.hidden = node.dataset.source !== source; });
  form.querySelectorAll("[data-mode]").forEach((node) => { node.hidden = node.dataset.mode !== mode; });
  form.querySelectorAll('[data-when="separate-val"]').forEach((node) => { node.hidden = !separateVal(); });
  form.querySelectorAll('[data-unless="separate-val"]').forEach((node) => { node.hidden = separateVal(); });
  const resize = form.elements.resize.value !== "none";
  form.querySelectorAll('[data-when="resize"]').forEach((node) => { node.hidden = !resize; });
  checkButton.hidden = source === "upload";
}

// The fields the API reads: only those that apply, and none left empty.
function fields() {
  const data = new FormData(form);
  const source = value("source");
  const drop = ["csrf_token", "source", "list_val_percent"];
  if (source !== "folders") drop.push("images", "labels", "val_images", "val_labels", "val_percent");
  if (source !== "upload") drop.push("archive");
  if (source !== "lists") drop.push("train_list", "val_list");
  if (source === "folders") drop.push(...(separateVal() ? ["val_percent"] : ["val_images", "val_labels"]));
  Object.entries(TASK_FIELDS).forEach(([name, own]) => { if (name !== task()) drop.push(...own); });
  if (form.elements.space.value !== "lab") drop.push("bins");
  if (value("label_mode") !== "rgb") drop.push("colormap", "nearest");
  if (form.elements.resize.value === "none") drop.push("width", "height");
  drop.forEach((name) => data.delete(name));
  if (source === "lists" && !form.elements.val_list.value && form.elements.list_val_percent.value) {
    data.set("val_percent", form.elements.list_val_percent.value);
  }
  for (const [name, item] of [...data.entries()]) {
    if (item === "" || (item instanceof File && !item.name)) data.delete(name);
  }
  return data;
}

function problemsTable(problems) {
  if (!problems.length) return el("p", { class: "ok-text" }, "No problems found.");
  return el("div", { class: "table-wrap" }, el("table", { class: "problems" },
    el("thead", {}, el("tr", {}, el("th", {}, "Severity"), el("th", {}, "Problem"), el("th", {}, "Files"),
      el("th", {}, "Examples"), el("th", {}, "Fix"))),
    el("tbody", {}, problems.map((problem) => el("tr", { class: `severity-${problem.severity}` },
      el("td", {}, el("span", { class: `status status-${problem.severity === "error" ? "failed" : "queued"}` },
        problem.severity)),
      el("td", {}, speak(problem.what_template, form)),
      el("td", { class: "num" }, problem.count),
      el("td", {}, el("ul", { class: "examples" },
        problem.examples_template.map((example) => el("li", {}, speak(example, form))))),
      el("td", {}, speak(problem.fix_template, form)))))));
}

function classBars(report) {
  if (!report.classes.length) return [el("p", { class: "empty" }, "No classes found.")];
  if (!report.classes.some((stat) => stat.pixels.train)) {
    return [el("p", { class: "empty" }, "The class shares are counted once the labels decode without errors.")];
  }
  const largest = Math.max(...report.classes.map((stat) => stat.frequency.train), 1e-9);
  return report.classes.map((stat) => el("div", { class: "bar-row" },
    el("span", { class: "swatch", style: `background: ${rgb(stat.colour)}` }),
    el("span", { class: "bar-label" }, `${stat.index} ${stat.name}`),
    el("span", { class: "bar" }, el("span", {
      class: "bar-fill", style: `width: ${(100 * stat.frequency.train / largest).toFixed(1)}%; background: ${rgb(stat.colour)}`,
    })),
    el("span", { class: "bar-value" },
      `${percent(stat.frequency.train)} train · ${percent(stat.frequency.val)} val · ${stat.images.train} images`)));
}

function previewCard(preview, classes) {
  const names = new Map(classes.map((stat) => [stat.index, stat]));
  return el("figure", { class: "preview" },
    el("div", { class: "pair" },
      preview.image ? el("img", { src: preview.image, alt: `image ${preview.name}` }) : null,
      preview.label ? el("img", { src: preview.label, alt: `label ${preview.name}`, class: "pixelated" }) : null),
    el("figcaption", {},
      el("strong", {}, preview.name), ` (${preview.stage}${preview.size ? `, ${preview.size.join("×")}` : ""})`,
      el("div", { class: "chips" }, (preview.classes || []).map((index) => {
        const stat = names.get(index);
        return el("span", { class: "chip" },
          stat ? el("span", { class: "swatch", style: `background: ${rgb(stat.colour)}` }) : null,
          stat ? stat.name : `value ${index}`);
      })),
      (preview.problems || []).map((problem) => el("div", { class: "error-text small" }, speak(problem, form)))));
}

const SHOWN_BINS = 12;

// A colorization report: the chroma histogram picture and the most frequent kept bins.
function showColourReport(report) {
  const picture = document.getElementById("report-histogram");
  picture.hidden = !report.histogram_picture;
  if (report.histogram_picture) picture.src = report.histogram_picture;
  const bins = report.bins;
  if (!bins) {
    document.getElementById("report-bins").replaceChildren(el("p", { class: "muted" },
      `Colour space ${report.colour_space}: the dataset stores the chroma planes, no bins.`));
    return;
  }
  const total = bins.pixels.reduce((sum, count) => sum + count, 0) || 1;
  const order = bins.pixels.map((count, index) => index).sort((a, b) => bins.pixels[b] - bins.pixels[a]);
  document.getElementById("report-bins").replaceChildren(
    el("p", {}, `${bins.count} ab bins kept (${bins.choice}); the most frequent:`),
    el("table", { class: "bins" },
      el("thead", {}, el("tr", {}, el("th", {}, "bin"), el("th", {}, "a"), el("th", {}, "b"), el("th", {}, "pixels"),
        el("th", {}, "weight"))),
      el("tbody", {}, order.slice(0, SHOWN_BINS).map((index) => el("tr", {},
        el("td", { class: "num" }, index), el("td", { class: "num" }, bins.centres[index][0]),
        el("td", { class: "num" }, bins.centres[index][1]), el("td", { class: "num" }, percent(bins.pixels[index] / total)),
        el("td", { class: "num" }, bins.weights[index].toFixed(3)))))));
}

function readyText(report, warnings) {
  const tail = warnings ? `, ${warnings} warning(s).` : ", no problems.";
  if (report.task === "colorization") {
    const bins = report.bins ? `, ${report.bins.count} ab bins` : "";
    return `Ready: ${report.counts.train} training and ${report.counts.val} validation photos${bins}` + tail;
  }
  return `Ready: ${report.counts.train} training and ${report.counts.val} validation pairs, ${report.classes.length} classes` + tail;
}

function showReport(report, previews = []) {
  const section = document.getElementById("report");
  const errors = report.problems.filter((problem) => problem.severity === "error");
  const warnings = report.problems.length - errors.length;
  const verdict = document.getElementById("report-verdict");
  const colour = report.task === "colorization";
  section.querySelectorAll("[data-report]").forEach((node) => {
    node.hidden = node.dataset.report !== (colour ? "colorization" : "segmentation");
  });
  verdict.className = `verdict ${report.ok ? "ok" : "bad"}`;
  verdict.textContent = report.ok
    ? readyText(report, warnings)
    : `${errors.reduce((sum, problem) => sum + problem.count, 0)} file(s) have errors that stop this dataset: ` +
      "fix them and check again. Nothing was created.";
  document.getElementById("report-problems").replaceChildren(problemsTable(report.problems));
  if (colour) {
    showColourReport(report);
  } else {
    document.getElementById("report-classes").replaceChildren(...classBars(report));
    document.getElementById("report-previews").replaceChildren(...previews.map((item) => previewCard(item, report.classes)));
    document.getElementById("report-pairs").hidden = !previews.length; // a refused create brings no pairs
  }
  section.hidden = false;
  section.scrollIntoView({ behavior: "smooth", block: "start" });
}

function busy(text) {
  status.textContent = text;
  form.querySelectorAll("button").forEach((button) => { button.disabled = Boolean(text); });
}

const CHECK_POLL_MS = 400;

// The check runs on the server in its own process: start it, then ask for its result until it is there.
async function runCheck() {
  const started = await api("POST", "/pages-api/dataset-check", fields());
  if (!started.ok) return started;
  for (;;) {
    await new Promise((resolve) => { setTimeout(resolve, CHECK_POLL_MS); });
    const result = await api("GET", started.data.poll);
    if (result.status !== 202) return result;
  }
}

checkButton.addEventListener("click", async () => {
  clearErrors(form);
  busy("Checking every image and label…");
  const result = await runCheck();
  busy("");
  if (result.ok) {
    keepDrawnSeed(result.data.report.seed);
    showReport(result.data.report, result.data.previews);
  } else {
    showError(errorOf(result), formError, form);
  }
});

// A check with no seed draws one; Create must split the same way, so the form keeps it.
function keepDrawnSeed(seed) {
  const input = form.elements.seed;
  if (input.value !== "" || seed === undefined) return;
  input.value = seed;
  document.getElementById("seed-note").hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  if (value("source") !== "upload") { // server folders are checked first: a dataset with errors is not queued
    busy("Checking every image and label…");
    const checked = await runCheck();
    if (!checked.ok || checked.data.refusal) {
      busy("");
      if (checked.ok) showReport(checked.data.report, []);
      showError(checked.ok ? checked.data.refusal : errorOf(checked), formError, form);
      return;
    }
  }
  busy("Queueing the dataset…");
  const result = await api("POST", "/api/v1/datasets", fields());
  busy("");
  if (result.ok) {
    window.location.assign(`/datasets/${result.data.jobs[0].id}`);
    return;
  }
  showError(errorOf(result), formError, form);
});

form.addEventListener("change", showApplicable);
showApplicable();
