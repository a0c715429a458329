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
