// The inference form: the fields of the chosen image source only, posted to the JSON API; the
// job runs in the background and its page shows the progress and then the results.
import { api, clearErrors, errorOf, showError } from "./common.js";

const form = document.getElementById("infer-form");
const chosen = () => form.querySelector('[name="source"]:checked').value;

function showSource() {
  form.querySelectorAll("[data-source]").forEach((block) => { block.hidden = block.dataset.source !== chosen(); });
}

const SOURCE_NAMES = { upload: "uploaded images", dataset: "validation images", folder: "a server folder" };

function fields() {
  const data = new FormData();
  data.set("name", `${form.getAttribute("data-model-name")} on ${SOURCE_NAMES[chosen()]}`);
  const snapshot = form.elements.snapshot;
  if (snapshot) data.set("snapshot", snapshot.value);
  const block = form.querySelector(`[data-source="${chosen()}"]`);
  for (const input of block.querySelectorAll("input, select")) {
    if (input.type === "file") [...input.files].forEach((file) => data.append(input.name, file));
    else if (input.value !== "") data.set(input.name, input.value);
  }
  return data;
}

form.addEventListener("change", showSource);
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const status = document.getElementById("form-status");
  status.textContent = "Uploading and queueing…";
  const result = await api("POST", `/api/v1/models/${form.getAttribute("data-model")}/infer`, fields());
  status.textContent = "";
  if (result.ok) window.location.assign(`/inference/${result.data.jobs[0].id}`);
  else showError(errorOf(result), document.getElementById("form-error"), form);
});
showSource();
