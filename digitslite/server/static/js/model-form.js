// The New model form: network tabs, the custom editor, solver defaults from the chosen network,
// the live learning-rate preview, the sweep count, and creation through the JSON API.
import { api, clearErrors, debounce, el, errorOf, showError } from "./common.js";
import { setupEditor } from "./editor.js";

const form = document.getElementById("model-form");
const choices = JSON.parse(document.getElementById("page-data").textContent);
const formError = document.getElementById("form-error");
const graph = document.getElementById("graph");
const NETWORK_FIELDS = { standard: ["network", "weights_job"], custom: ["network_prototxt", "weights_job"],
  previous: ["network_job", "network_snapshot"], pretrained: ["pretrained"] };
const ALL_NETWORK_FIELDS = [...new Set(Object.values(NETWORK_FIELDS).flat())];
const SOLVER_FIELDS = ["solver_type", "base_lr", "lr_policy", "gamma", "power", "stepsize", "stepvalue", "momentum",
  "weight_decay", "test_interval", "snapshot_interval", "display"];
const SOLVER_NAMES = choices.solver_names; // form field -> solver field, as the server maps them

const field = (name) => form.elements[name];
const source = () => form.querySelector('[name="network_source"]:checked').value;
const standard = () => choices.networks.find((network) => network.name === form.querySelector('[name="network"]:checked')?.value);
const dataset = () => choices.datasets.find((item) => item.id === field("dataset")?.value);

const editor = setupEditor({
  textarea: document.getElementById("prototxt"),
  gutter: document.querySelector(".editor .gutter"),
  status: document.getElementById("check-status"),
  dataset: () => field("dataset")?.value,
  graph,
  onChecked: (result) => {
    if (!result.error) form.querySelector('[data-error-for="network_prototxt"]').hidden = true;
  },
});

// The solver values a blank field stands for: the standard network's, else the server's defaults.
function defaults() {
  return source() === "standard" && standard() ? standard().solver : choices.default_solver;
}

function valueOf(name) {
  const value = field(name).value.trim();
  return value || String(defaults()[SOLVER_NAMES[name] || name] ?? "");
}

function showNetworkPanel() {
  const active = source();
  form.querySelectorAll("[data-panel]").forEach((panel) => { panel.hidden = panel.dataset.panel !== active; });
  form.querySelector("[data-weights]").hidden = !NETWORK_FIELDS[active].includes("weights_job");
  refreshGraph();
}

function refreshGraph() {
  if (!graph.closest("details").open) return;
  if (source() === "standard" && standard()) {
    graph.replaceChildren(el("img", { src: `/pages-api/networks/${standard().name}/graph.svg`, alt: `graph of ${standard().name}` }));
  } else if (source() === "custom") {
    editor.refreshGraph();
  } else {
    graph.replaceChildren(el("p", { class: "empty" }, "The graph of a previous or pretrained model is on its page."));
  }
}

function showSolverDefaults() {
  const solver = defaults();
  for (const name of SOLVER_FIELDS) {
    const value = solver[SOLVER_NAMES[name] || name];
    const input = field(name);
    if (input.tagName === "SELECT") input.options[0].textContent = value !== undefined ? `${value} (network's)` : "network's";
    else input.placeholder = value !== undefined ? String(value) : "";
  }
  const policy = valueOf("lr_policy");
  form.querySelectorAll("[data-policy]").forEach((label) => { label.hidden = !label.dataset.policy.split(" ").includes(policy); });
}

function fillSnapshots() {
  const select = field("network_snapshot");
  if (!select) return;
  const model = choices.models.find((item) => item.id === field("network_job").value);
  const wanted = select.dataset.selected;
  select.replaceChildren(...(model ? model.snapshots : []).slice().reverse().map((iteration) =>
    el("option", { value: iteration, selected: String(iteration) === wanted ? "" : null }, `iteration ${iteration}`)));
}

const list = (text) => text.split(",").map((item) => item.trim()).filter(Boolean);

// Iterations of the whole training, as the job will count them.
function trainingIterations() {
  const length = Number(field("train_length").value);
  if (field("train_unit").value === "max_iter" && length) return { iterations: length, note: "" };
  const network = source() === "standard" ? standard() : null;
  const batch = Number(list(field("batch_size").value)[0]) || (network ? network.batch : 1);
  const perEpoch = Math.max(1, Math.ceil((dataset()?.train || 1) / (batch * (Number(field("iter_size").value) || 1))));
  if (!length && network && network.solver.max_iter) return { iterations: network.solver.max_iter, note: " (the network's length)" };
  const epochs = length || 30;
  return { iterations: epochs * perEpoch, note: ` (${epochs} epochs of ${perEpoch} iterations)` };
}

const previewRates = debounce(async () => {
  const { iterations, note } = trainingIterations();
  const query = new URLSearchParams({ max_iter: iterations, base_lr: valueOf("base_lr"), lr_policy: valueOf("lr_policy") });
  for (const name of ["gamma", "power", "stepsize", "stepvalue"]) if (valueOf(name)) query.set(name, valueOf(name));
  const caption = document.getElementById("lr-caption");
  const result = await api("GET", `/pages-api/lr-curve?${query}`);
  if (!result.ok) {
    caption.textContent = `No preview: ${errorOf(result).message}`;
    return;
  }
  const traces = result.data.curves.map((curve) => ({
    x: curve.iterations, y: curve.rates, mode: "lines", name: `base_lr ${curve.base_lr}`, line: { width: 2 },
  }));
  const highest = Math.max(...result.data.curves.flatMap((curve) => curve.rates));
  window.Plotly.react("lr-chart", traces, {
    margin: { l: 60, r: 10, t: 10, b: 40 }, height: 220, showlegend: traces.length > 1,
    xaxis: { title: { text: "iteration" } },
    yaxis: { title: { text: "learning rate" }, exponentformat: "e", range: [0, 1.15 * highest] },
    legend: { orientation: "h" },
  }, { displaylogo: false, responsive: true });
  caption.textContent = `Learning rate over ${iterations} iterations${note}.`;
}, 250);

function showSweep() {
  const rates = Math.max(1, list(field("base_lr").value).length);
  const batches = Math.max(1, list(field("batch_size").value).length);
  const jobs = rates * batches;
  document.getElementById("sweep").textContent = jobs > 1
    ? `This makes a sweep of ${jobs} jobs (${rates} learning rate(s) × ${batches} batch size(s)), grouped together.` : "";
}

function fields() {
  const data = new FormData(form);
  const keep = NETWORK_FIELDS[source()];
  for (const name of ["csrf_token", "network_source", "train_length", "train_unit", ...ALL_NETWORK_FIELDS.filter((name) => !keep.includes(name))]) {
    data.delete(name);
  }
  if (field("train_length").value) data.set(field("train_unit").value === "epochs" ? "epochs" : "max_iter", field("train_length").value);
  const gpuIds = data.getAll("gpu_ids");
  data.delete("gpu_ids");
  if (gpuIds.length) {
    data.set("gpu_ids", gpuIds.join(","));
    data.delete("gpus");
  }
  for (const [name, value] of [...data.entries()]) if (value === "") data.delete(name);
  return data;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  if (source() === "custom") {
    if (editor.result().text !== field("network_prototxt").value) await editor.check();
    const { error } = editor.result();
    if (error) {
      const where = error.line ? ` on line ${error.line}` : "";
      showError({ message: `Fix the network's error${where} (above) before creating the model.`, field: "network_prototxt" },
        formError, form);
      return;
    }
  }
  const status = document.getElementById("form-status");
  status.textContent = "Queueing…";
  const result = await api("POST", "/api/v1/models", fields());
  status.textContent = "";
  if (!result.ok) {
    showError(errorOf(result), formError, form);
    return;
  }
  const jobs = result.data.jobs;
  window.location.assign(jobs.length === 1 ? `/models/${jobs[0].id}`
    : `/?tab=models&group=${encodeURIComponent(jobs[0].group)}`);
});

document.getElementById("customize").addEventListener("click", async () => {
  const response = await fetch(`/pages-api/networks/${standard().name}/prototxt`);
  editor.setText(await response.text());
  form.querySelector('[name="network_source"][value="custom"]').checked = true;
  showNetworkPanel();
  showSolverDefaults();
});

form.addEventListener("change", (event) => {
  const name = event.target.name;
  if (name === "network_source" || name === "network") showNetworkPanel();
  if (name === "network_job") fillSnapshots();
  if (name === "dataset" && source() === "custom") editor.check();
  showSolverDefaults();
  previewRates();
});
form.addEventListener("input", (event) => {
  if (event.target.name === "network_prototxt") return;
  showSweep();
  previewRates();
});
document.getElementById("graph-panel").addEventListener("toggle", refreshGraph);

fillSnapshots();
showNetworkPanel();
showSolverDefaults();
showSweep();
previewRates();
if (source() === "custom") editor.check();
