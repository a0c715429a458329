// Path completion for inputs marked data-complete="folders" or "files": suggestions come from the
// server and never leave its data roots.
import { debounce } from "./common.js";

function attach(input, index) {
  const list = document.createElement("datalist");
  list.id = `paths-${index}`;
  input.after(list);
  input.setAttribute("list", list.id);
  input.setAttribute("autocomplete", "off");
  const files = input.dataset.complete === "files" ? "1" : "0";
  const refresh = debounce(async () => {
    const query = new URLSearchParams({ prefix: input.value, files });
    const response = await fetch(`/pages-api/paths?${query}`);
    if (!response.ok) return;
    const { paths } = await response.json();
    list.replaceChildren(...paths.map((path) => Object.assign(document.createElement("option"), { value: path })));
  }, 150);
  input.addEventListener("input", refresh);
  input.addEventListener("focus", refresh);
}

document.querySelectorAll("input[data-complete]").forEach(attach);
