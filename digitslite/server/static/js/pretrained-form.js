// The pretrained-model upload: its files posted to the JSON API, which checks the network and the
// weights before it queues the import; a refusal is shown next to the file it is about.
import { api, clearErrors, errorOf, showError } from "./common.js";

const form = document.getElementById("pretrained-form");
const LABELS = { deploy: "Deploy network", weights: "Weights", classes: "Class names", colormap: "Colour map" };

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const data = new FormData();
  for (const input of form.querySelectorAll("input, textarea")) {
    if (input.type === "file") {
      if (input.files[0]) data.append(input.name, input.files[0]);
    } else if (input.value.trim() !== "") {
      data.append(input.name, input.value.trim());
    }
  }
  const status = document.getElementById("form-status");
  status.textContent = "Uploading and checking…";
  const result = await api("POST", "/api/v1/pretrained", data);
  status.textContent = "";
  if (result.ok) {
    window.location.assign(`/pretrained/${result.data.jobs[0].id}`);
    return;
  }
  const error = errorOf(result);
  // The API names its field first ("weights: ..."); the page speaks of the file chooser instead.
  const prefix = `${error.field}: `;
  const message = error.field && error.message.startsWith(prefix) ?
    `${LABELS[error.field] || error.field}: ${error.message.slice(prefix.length)}` : error.message;
  showError({ ...error, message }, document.getElementById("form-error"), form);
});
