// The custom-network editor: line numbers, a live `net check` on the server as you type (errors
// with their line, blob shapes, the stride table, Crop offsets with a one-click fix) and the graph.
import { api, debounce, el, errorOf } from "./common.js";

const CHECK_DELAY_MS = 400;

function cell(value) {
  if (value === null || value === undefined) return "–";
  return Array.isArray(value) ? value.join(", ") : String(value);
}

function table(headers, rows) {
  return el("table", { class: "compact" },
    el("thead", {}, el("tr", {}, headers.map((header) => el("th", {}, header)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((value) => el("td", {}, value))))));
}

export function setupEditor({ textarea, gutter, status, dataset, graph, onChecked }) {
  let lines = 0;
  let checked = { error: null, text: null };

  function numberLines(errorLine) {
    const count = textarea.value.split("\n").length;
    if (count !== lines || errorLine !== undefined) {
      lines = count;
      gutter.replaceChildren(...Array.from({ length: count }, (_, index) =>
        el("span", { class: index + 1 === errorLine ? "error-line" : null }, `${index + 1}\n`)));
    }
    gutter.scrollTop = textarea.scrollTop;
  }

  function goToLine(line) {
    const starts = textarea.value.split("\n").slice(0, line - 1).reduce((sum, text) => sum + text.length + 1, 0);
    textarea.focus();
    textarea.setSelectionRange(starts, starts + (textarea.value.split("\n")[line - 1] || "").length);
    const lineHeight = textarea.scrollHeight / Math.max(lines, 1);
    textarea.scrollTop = Math.max(0, (line - 5) * lineHeight);
  }

  function showCrops(crops) {
    const panel = document.getElementById("crops-panel");
    panel.hidden = !crops.length;
    const state = (crop) => !crop.derived ? "kept (no whole offset to derive; Caffe crops as written)"
      : crop.ok && crop.written ? "ok" : crop.written ? "wrong" : "missing (derived when training starts)";
    const needsFix = crops.some((crop) => crop.derived && (!crop.ok || !crop.written));
    const fix = needsFix ? el("button", { type: "button", class: "small primary", id: "fix-crops" }, "Write the derived offsets") : null;
    if (fix) fix.addEventListener("click", fixCrops);
    document.getElementById("crops").replaceChildren(el("div", {},
      table(["Crop layer", "Written", "Derived", "State"],
        crops.map((crop) => [crop.layer, cell(crop.written), cell(crop.derived),
          el("span", { class: `crop-${state(crop).split(" ")[0]}` }, state(crop))])),
      fix));
  }

  function showResult(result) {
    const error = result.error;
    status.className = `check-status ${error ? "bad" : "good"}`;
    status.replaceChildren();
    if (error) {
      const place = error.line ? `Line ${error.line}${error.column ? `, column ${error.column}` : ""}: ` : "";
      status.append(el("strong", {}, place), error.message);
      if (error.line) {
        const jump = el("button", { type: "button", class: "link small" }, "go to line");
        jump.addEventListener("click", () => goToLine(error.line));
        status.append(" ", jump);
      }
      if ((result.class_fixes || []).length) {
        const count = el("button", { type: "button", class: "small primary", id: "fix-classes" },
          `Set num_output to ${result.dataset_classes}`);
        count.addEventListener("click", () => fixClasses("count"));
        const field = el("button", { type: "button", class: "small", id: "fix-classes-template" },
          "Write {{num_classes}}");
        field.addEventListener("click", () => fixClasses("template"));
        status.append(el("p", {}, count, " ", field));
      }
    } else {
      const [channels, height, width] = result.image_shape;
      const input = result.from_dataset ? "the dataset's" : "a default input, until a dataset is chosen:";
      status.append(`✓ ${result.layers} layers in the training net, ${result.blobs.length} blobs ` +
        `(for ${input} ${width}×${height}, ${channels} channels)`);
    }
    for (const warning of result.warnings || []) {
      const place = warning.line ? `Line ${warning.line}: ` : "";
      status.append(el("p", { class: "check-warning small" }, el("strong", {}, `Warning. ${place}`), warning.message));
    }
    for (const note of result.notes || []) status.append(el("p", { class: "small muted" }, note));
    numberLines(error ? error.line : null);
    showCrops(result.crops);
    document.getElementById("blobs-summary").textContent = result.blobs.length ? `(${result.blobs.length})` : "";
    document.getElementById("blobs").replaceChildren(
      table(["Blob", "Shape (N × C × H × W)"], result.blobs.map((blob) => [blob.name, blob.shape.join(" × ") || "scalar"])));
    const strides = result.strides;
    document.getElementById("strides").replaceChildren(...(strides ? [
      table(["Layer", "Type", "Kernel", "Stride", "Pad", "Scale", "Cum. scale", "Offset", "Cum. offset"],
        strides.rows.map((row) => [row.layer, row.type, cell(row.kernel), cell(row.stride), cell(row.pad),
          cell(row.scale), cell(row.cumulative_scale), cell(row.offset), cell(row.cumulative_offset)])),
      el("p", { class: "small muted" }, strides.note ||
        `Crop offset that aligns the output with the input: ${cell(strides.crop_offset)}`),
    ] : []));
  }

  function form() {
    const data = new FormData();
    data.set("text", textarea.value);
    if (dataset()) data.set("dataset", dataset());
    return data;
  }

  async function check() {
    const text = textarea.value;
    if (!text.trim()) {
      checked = { error: { message: "the network is empty" }, text };
      status.className = "check-status";
      status.textContent = "Type or paste a network to check it.";
      return;
    }
    const result = await api("POST", "/pages-api/net-check", form());
    if (textarea.value !== text) return; // a newer check is on its way
    checked = result.ok ? { ...result.data, text } : { error: errorOf(result), text };
    showResult(result.ok ? result.data : { error: errorOf(result), crops: [], blobs: [], strides: null });
    if (!checked.error) refreshGraph();
    onChecked(checked);
  }

  async function fixCrops() {
    await applyFix("/pages-api/net-fix", form());
  }

  async function fixClasses(to) {
    const data = form();
    data.set("to", to);
    await applyFix("/pages-api/net-fix-classes", data);
  }

  async function applyFix(path, data) {
    const result = await api("POST", path, data);
    if (!result.ok) {
      showResult({ error: errorOf(result), crops: [], blobs: [], strides: null });
      return;
    }
    textarea.value = result.data.text;
    check();
  }

  async function refreshGraph() {
    if (!graph.closest("details").open) return;
    if (checked.error || checked.text !== textarea.value) {
      graph.replaceChildren(el("p", { class: "empty" }, "The graph appears once the network checks without errors."));
      return;
    }
    const result = await api("POST", "/pages-api/net-graph", form());
    if (result.ok) graph.innerHTML = result.data;
  }

  const later = debounce(check, CHECK_DELAY_MS);
  textarea.addEventListener("input", () => { numberLines(); later(); });
  textarea.addEventListener("scroll", () => { gutter.scrollTop = textarea.scrollTop; });
  textarea.addEventListener("keydown", (event) => {
    if (event.key !== "Tab" || event.shiftKey) return;
    event.preventDefault();
    textarea.setRangeText("  ", textarea.selectionStart, textarea.selectionEnd, "end");
    later();
  });
  numberLines();
  return {
    check,
    refreshGraph,
    result: () => checked,
    setText(text) { textarea.value = text; numberLines(); check(); },
  };
}
