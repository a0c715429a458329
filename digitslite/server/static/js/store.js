// The model store page: every store's listing from the JSON API (an unreachable store is shown with
// its error), and Import buttons that queue a pretrained-model job.
import { api, el, errorOf, percent } from "./common.js";

const box = document.getElementById("stores");

function size(bytes, exact) {
  if (bytes === null) return "unknown";
  const text = bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return exact ? text : `about ${text}`;
}

function metrics(model) {
  const shown = Object.entries(model.metrics || {}).filter(([, value]) => typeof value === "number");
  return shown.map(([name, value]) => `${name} ${value <= 1 ? percent(value) : value}`).join(" · ");
}

function importButton(store, model) {
  const button = el("button", { type: "button", class: "small primary" }, "Import");
  const outcome = el("span", { class: "small", role: "status" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    const result = await api("POST", "/api/v1/store/import", { store: store.url, name: model.id });
    if (result.ok) {
      const job = result.data.jobs[0];
      outcome.replaceChildren("Queued: ", el("a", { href: `/pretrained/${job.id}` }, job.name));
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
