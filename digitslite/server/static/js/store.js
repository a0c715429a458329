// The model store page: every store's listing from the JSON API (an unreachable store is shown with
// its error), and Import buttons that queue a pretrained-model job.
import { api, el, errorOf, percent } from "./common.js";

const box = document.getElementById("stores");

function size(bytes, exact) {
  if (bytes === null) return "unknown";
  const text = bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return exact ? text : `about ${text}`;
}

// Each metric as its kind reads: a share (accuracy, IU) as a percentage, anything else (a loss) as the
// number it is; the iteration is not a metric but when they were measured.
function metricText(name, value) {
  return /acc|(^|_)iu$/i.test(name) ? `${name} ${percent(value)}` : `${name} ${Number(value.toPrecision(4))}`;
}

function metrics(model) {
  const { iteration, ...measured } = model.metrics || {};
  const shown = Object.entries(measured).filter(([, value]) => typeof value === "number");
  const text = shown.map(([name, value]) => metricText(name, value)).join(" · ");
  return typeof iteration === "number" && text ? `${text} (at iteration ${iteration.toLocaleString("en")})` : text;
}

// An import's outcome follows its job to the end: queued, running, then done or failed with why.
function followImport(job, outcome) {
  const badge = el("span", { class: "status status-queued" }, "queued");
  const why = el("span", { class: "error-text small" });
  outcome.replaceChildren(badge, " ", el("a", { href: `/pretrained/${job.id}` }, job.name), " ", why);
  const source = new EventSource(`/api/v1/jobs/${job.id}/events`);
  source.addEventListener("status", (event) => {
    const state = JSON.parse(event.data);
    badge.className = `status status-${state.status}`;
    badge.textContent = state.status;
    why.textContent = state.error ? state.error.message : "";
  });
  source.addEventListener("end", () => source.close());
}

function importButton(store, model) {
  const button = el("button", { type: "button", class: "small primary" }, "Import");
  const outcome = el("span", { class: "small", role: "status" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    const result = await api("POST", "/api/v1/store/import", { store: store.url, name: model.id });
    if (result.ok) {
      followImport(result.data.jobs[0], outcome);
    } else {
      outcome.replaceChildren(el("span", { class: "error-text" }, errorOf(result).message));
      button.disabled = false;
    }
  });
  return el("div", { class: "import" }, button, outcome);
}

function storeSection(store) {
  const head = el("div", { class: "section-head" },
    el("h2", {}, store.url),
    el("span", { class: `status ${store.reachable ? "status-done" : "status-failed"}` }, store.reachable ? "reachable" : "unreachable"));
  if (!store.reachable) {
    return el("section", { class: "card store unreachable" }, head, el("p", { class: "alert error" }, store.error));
  }
  const rows = store.models.map((model) => el("tr", {},
    el("td", {}, el("strong", {}, model.name), el("div", { class: "muted small mono" }, model.id),
      model.note ? el("div", { class: "small" }, model.note) : null),
    el("td", {}, model.task || "–", model.classes ? el("div", { class: "muted small" }, `${model.classes.length} classes`) : null),
    el("td", {}, metrics(model) || "–"),
    el("td", {}, size(model.size, model.size_exact), el("div", { class: "muted small" }, `weights ${model.weights}`)),
    el("td", { class: "small" }, model.license || "–"),
    el("td", {}, model.error ? el("span", { class: "error-text small" }, model.error) : importButton(store, model))));
  return el("section", { class: "card store" }, head, store.msg ? el("p", { class: "muted" }, store.msg) : null,
    store.models.length ? el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ["Model", "Task", "Metrics", "Download", "License", ""].map((title) => el("th", {}, title)))),
      el("tbody", {}, rows))) : el("p", { class: "empty" }, "This store lists no model."));
}

async function load() {
  box.replaceChildren(el("p", { class: "empty" }, "Reading the stores…"));
  const result = await api("GET", "/api/v1/store/models");
  if (!result.ok) {
    box.replaceChildren(el("p", { class: "alert error" }, errorOf(result).message));
    return;
  }
  box.replaceChildren(...result.data.stores.map(storeSection));
}

document.getElementById("reload-stores").addEventListener("click", load);
load();
