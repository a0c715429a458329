// Every job page: follows the job over Server-Sent Events (status, progress, metrics, snapshots),
// runs its actions (abort, resume, delete) and tails its log. Page scripts listen on `jobEvents`.
import { api, duration, errorOf, percent } from "./common.js";

const head = document.getElementById("job");
export const jobId = head.dataset.jobId;
export const jobEvents = new EventTarget();
const ACTIVE = head.dataset.activeStatuses.split(" "); // the server's status groups
const RESUMABLE = head.dataset.resumableStatuses.split(" ");
const RESUME_LOOK_MS = 5000;
const errorBox = document.getElementById("job-error");
const log = document.getElementById("log");
let status = head.dataset.status;
// How many status changes lie behind the status shown. A reply can be overtaken by the event stream
// (an abort's reply saying "running" after the stream said "aborted"): fewer changes means older.
let transitions = Number(head.dataset.transitions);
let source = null;
let metricsSeen = 0;
let pace = null; // {time, progress} when this page first saw the job running, for the ETA
let sawItRun = ACTIVE.includes(status); // a page of a job that ran while open reloads at its end
// False when the job failed on input that can never fit (the server says so): Resume would only fail again.
let resumeHelps = !head.hasAttribute("data-resume-useless");

function emit(name, detail) {
  jobEvents.dispatchEvent(new CustomEvent(name, { detail }));
}

// Abort while the job is active, Resume once it stopped short and running it again may help.
function showActions() {
  head.querySelectorAll("[data-when]").forEach((button) => {
    const active = button.dataset.when === "active";
    button.hidden = !(active ? ACTIVE.includes(status) : RESUMABLE.includes(status) && resumeHelps);
  });
}

// Shows the state unless it is older than the one shown; says whether it did.
function showStatus(state) {
  if (state.transitions < transitions) return false;
  transitions = state.transitions;
  status = state.status;
  resumeHelps = state.error?.resumable !== false;
  const badge = head.querySelector("[data-status-badge] .status");
  badge.className = `status status-${status}`;
  badge.textContent = status;
  const fill = head.querySelector(".progress-fill");
  fill.style.width = `${(100 * state.progress).toFixed(1)}%`;
  fill.className = `progress-fill status-${status}`;
  head.querySelector("[data-progress-text]").textContent = percent(state.progress, 0);
  // The message tells the step a job is at: an ended job shows only its status (and its error).
  head.querySelector("[data-message]").textContent =
    !ACTIVE.includes(status) || state.message === status ? "" : state.message || "";
  head.dataset.status = status;
  showActions();
  if (state.error) {
    errorBox.textContent = state.error.message;
    errorBox.hidden = false;
  } else {
    errorBox.hidden = true;
  }
  showEta(state.progress);
  return true;
}

// Time left from the pace this page has watched: progress gained per second since it first saw it.
function showEta(progress) {
  const eta = head.querySelector("[data-eta]");
  if (status !== "running") {
    pace = null;
    eta.textContent = "";
    return;
  }
  const now = Date.now() / 1000;
  if (!pace) pace = { time: now, progress };
  const rate = (progress - pace.progress) / (now - pace.time);
  eta.textContent = rate > 0 ? `about ${duration((1 - progress) / rate)} left` : "";
}

export function follow() {
  if (source) source.close();
  source = new EventSource(`/api/v1/jobs/${jobId}/events?after=${metricsSeen}`);
  source.addEventListener("status", (event) => {
    const state = JSON.parse(event.data);
    if (showStatus(state)) emit("status", state);
  });
  source.addEventListener("metrics", (event) => {
    const data = JSON.parse(event.data);
    metricsSeen = data.next;
    emit("metrics", data.records);
  });
  source.addEventListener("reset", () => {
    metricsSeen = 0; // the metrics file was replaced (the job was resumed): its records come again
    emit("reset");
  });
  source.addEventListener("snapshot", (event) => emit("snapshot", JSON.parse(event.data)));
  source.addEventListener("end", (event) => {
    source.close();
    source = null;
    tailLog();
    emit("end", JSON.parse(event.data));
    if (sawItRun && head.hasAttribute("data-reload-on-end")) window.location.reload();
  });
}

async function tailLog() {
  if (!log) return;
  const response = await fetch(`/api/v1/jobs/${jobId}/log?offset=${log.dataset.offset}`);
  if (!response.ok) return;
  const text = await response.text();
  if (text) {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(text);
    log.closest("details").hidden = false;
    if (atBottom) log.scrollTop = log.scrollHeight;
  }
  log.dataset.offset = response.headers.get("X-Next-Offset");
}

// The job runs again (resumed here or elsewhere). A resumed training rewrites its metrics from its
// snapshot on, so they are read again from the start.
function followAgain(state) {
  if (!showStatus(state)) return;
  emit("status", state);
  metricsSeen = 0;
  sawItRun = true;
  emit("reset");
  follow();
}

// While no stream is open (the job has ended), look now and then whether it was resumed elsewhere:
// another tab, the jobs table, the command line.
async function lookForResume() {
  if (source || !RESUMABLE.includes(status) || document.hidden) return;
  const result = await api("GET", `/api/v1/jobs/${jobId}`);
  if (result.ok && ACTIVE.includes(result.data.status)) followAgain(result.data);
}

async function perform(action) {
  errorBox.hidden = true;
  let result;
  if (action === "delete") {
    if (!window.confirm("Delete this job and all its files?")) return;
    result = await api("DELETE", `/api/v1/jobs/${jobId}`);
    if (result.status === 409 && errorOf(result).related &&
        window.confirm(`${errorOf(result).message}\n\nDelete it anyway?`)) {
      result = await api("DELETE", `/api/v1/jobs/${jobId}?force=1`);
    }
    if (result.ok) {
      window.location.assign("/");
      return;
    }
  } else {
    if (action === "abort" && !window.confirm("Abort this job? It stops now.")) return;
    result = await api("POST", `/api/v1/jobs/${jobId}/${action}`);
    if (result.ok) {
      if (action === "resume") {
        followAgain(result.data);
      } else if (showStatus(result.data)) {
        emit("status", result.data);
      }
      return;
    }
  }
  errorBox.textContent = errorOf(result).message;
  errorBox.hidden = false;
}

// While an action's request is out the head is aria-busy and its buttons take no second click.
const actionButtons = head.querySelectorAll("[data-action]");
async function act(action) {
  head.setAttribute("aria-busy", "true");
  actionButtons.forEach((button) => { button.disabled = true; });
  try {
    await perform(action);
  } finally {
    head.removeAttribute("aria-busy");
    actionButtons.forEach((button) => { button.disabled = false; });
  }
}

actionButtons.forEach((button) => {
  button.addEventListener("click", () => act(button.dataset.action));
});

if (log) {
  log.scrollTop = log.scrollHeight;
  setInterval(() => { if (ACTIVE.includes(status)) tailLog(); }, 2000);
}
showActions();
if (sawItRun || head.dataset.follow === "always") follow();
setInterval(lookForResume, RESUME_LOOK_MS);
