// The home page: the queued-and-running table refreshes itself, abort buttons in it, and the bulk
// abort / delete of the rows ticked in the jobs table.
import { api, errorOf } from "./common.js";

const REFRESH_MS = 3000;
const active = document.getElementById("active");
const bulk = document.getElementById("bulk");
const ticked = () => [...document.querySelectorAll('#jobs-table input[name="job"]:checked')].map((box) => box.value);

async function refreshActive() {
  const response = await fetch(active.dataset.refresh);
  if (response.ok) active.innerHTML = await response.text();
}

active.addEventListener("click", async (event) => {
  const id = event.target.dataset.abort;
  if (!id || !window.confirm("Abort this job? It stops now.")) return;
  event.target.disabled = true;
  await api("POST", `/api/v1/jobs/${id}/abort`);
  refreshActive();
});

function showBulk() {
  const count = ticked().length;
  bulk.hidden = count === 0;
  document.getElementById("bulk-count").textContent = `${count} selected`;
}

document.getElementById("select-all")?.addEventListener("change", (event) => {
  document.querySelectorAll('#jobs-table input[name="job"]').forEach((box) => { box.checked = event.target.checked; });
  showBulk();
});
document.getElementById("jobs-table")?.addEventListener("change", showBulk);

bulk.addEventListener("click", async (event) => {
  const action = event.target.dataset.bulk;
  if (!action) return;
  const ids = ticked();
  const question = action === "delete" ? `Delete ${ids.length} job(s) and all their files?` :
    `Abort ${ids.length} job(s)? Those still queued or running stop now.`;
  if (!window.confirm(question)) return;
  const failures = [];
  for (const id of ids) {
    const result = action === "delete" ? await api("DELETE", `/api/v1/jobs/${id}`) : await api("POST", `/api/v1/jobs/${id}/abort`);
    if (!result.ok) failures.push(`${id}: ${errorOf(result).message}`);
  }
  if (failures.length) {
    document.getElementById("bulk-result").textContent = `${ids.length - failures.length} done; ${failures.join("; ")}`;
  } else {
    window.location.reload();
  }
});

setInterval(refreshActive, REFRESH_MS);
