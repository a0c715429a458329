// A pretrained model's page: convolutionalize a classifier into a standard FCN's initial weights.
import { api, errorOf } from "./common.js";

const form = document.getElementById("surgery-form");
form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = Object.fromEntries(new FormData(form).entries());
  const result = await api("POST", `/api/v1/pretrained/${form.getAttribute("data-job")}/convolutionalize`, body);
  if (result.ok) {
    window.location.assign(`/pretrained/${result.data.jobs[0].id}`);
    return;
  }
  const box = document.getElementById("surgery-error");
  box.textContent = errorOf(result).message;
  box.hidden = false;
});

// A failed store import: import the entry again with a copy of the weights the user has (an upload
// or a file in the data roots); the new job checks it against the store's checksum.
const localCopy = document.getElementById("local-copy-form");
localCopy?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData();
  data.append("store", localCopy.dataset.store);
  data.append("name", localCopy.dataset.entry);
  data.append("job_name", localCopy.dataset.jobName);
  if (localCopy.dataset.groupUpscores) data.append("group_upscores", "true");
  const upload = localCopy.elements.weights.files[0];
  const path = localCopy.elements.weights_file.value.trim();
  const box = document.getElementById("local-copy-error");
  if (!upload === !path) {
    box.textContent = upload ? "Choose the upload or the data-folder file, not both." :
      "Choose a .caffemodel to upload, or give a file in the data folders.";
    box.hidden = false;
    return;
  }
  if (upload) data.append("weights", upload);
  else data.append("weights_file", path);
  const result = await api("POST", "/api/v1/store/import", data);
  if (result.ok) {
    window.location.assign(`/pretrained/${result.data.jobs[0].id}`);
    return;
  }
  const error = errorOf(result);
  box.textContent = error.field === "weights_file" ? error.message.replace(/^weights_file: /, "Data-folder file: ") :
    error.message;
  box.hidden = false;
});
