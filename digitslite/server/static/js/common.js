// Helpers every page script shares: API calls with the CSRF token, DOM building, error display.
"use strict";

const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

// fetch() with the session's CSRF token; resolves to {ok, status, data} (data: JSON or text).
export async function api(method, url, body) {
  const options = { method, headers: { "X-CSRF-Token": csrfToken, Accept: "application/json" } };
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  return { ok: response.ok, status: response.status, data };
}

// The message of an API error body {"error": {"message", "field"}}.
export function errorOf(result) {
  return (result.data && result.data.error) || { message: `HTTP ${result.status}`, field: null };
}

// el("td", {class: "x"}, "text", child...): a new element; attributes set with setAttribute.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// A server text that names options as [[field]], in this page's words: the label of the form's own
// control for that field (a radio group by its name), quoted.
export function speak(text, form = document) {
  return text.replace(/\[\[(\w+)\]\]/g, (marked, name) => {
    const input = form.querySelector(`[name="${name}"]`);
    const label = input?.type === "radio" ? input.closest("[role=radiogroup]")?.getAttribute("aria-label")
      : input?.closest("label")?.textContent;
    return label ? `\u201c${label.trim().replace(/\s+/g, " ")}\u201d` : name.replaceAll("_", " ");
  });
}

// Show an API error next to its field (an element [data-error-for=field]) or in `fallback`; an error
// about several fields (error.fields) shows each one's message next to it, the first focused.
export function showError(error, fallback, form = document) {
  clearErrors(form);
  const problems = error.fields || [error];
  problems.forEach((problem) => {
    const target = (problem.field && form.querySelector(`[data-error-for="${problem.field}"]`)) || fallback;
    const whole = target === fallback && problems.length > 1;
    target.textContent = whole || problem === error ? speak(error.template || error.message, form) : problem.message;
    target.hidden = false;
    target.closest("details")?.setAttribute("open", ""); // an error in a folded section unfolds it
    const input = problem.field && form.querySelector(`[name="${problem.field}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
  });
  form.querySelector('[aria-invalid="true"]')?.focus();
}

export function clearErrors(form = document) {
  form.querySelectorAll("[data-error-for], .form-error").forEach((node) => { node.hidden = true; });
  form.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
}

export function percent(fraction, digits = 1) {
  return fraction === null || fraction === undefined ? "–" : `${(100 * fraction).toFixed(digits)} %`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

export function rgb(colour) {
  return `rgb(${colour[0]}, ${colour[1]}, ${colour[2]})`;
}

// Forms with data-confirm ask before they submit.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
