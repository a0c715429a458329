// A dataset's record gallery: a record opens large in a dialog, with the classes its label holds
// (names and colours from the dataset).
import { api, el, rgb } from "./common.js";

const gallery = document.getElementById("gallery");
const dialog = document.getElementById("record-dialog");

async function open(button) {
  const names = JSON.parse(gallery.dataset.classes);
  const palette = JSON.parse(gallery.dataset.palette);
  document.getElementById("record-title").textContent = button.dataset.name;
  const image = document.getElementById("record-image");
  const label = document.getElementById("record-label");
  image.src = button.dataset.image;
  image.alt = `image ${button.dataset.name}`;
  label.src = button.dataset.label;
  label.alt = `label ${button.dataset.name}`;
  const legend = document.getElementById("record-legend");
  legend.replaceChildren();
  dialog.showModal();
  if (!button.dataset.classesUrl) return; // a colorization record: its colour is the second picture
  const result = await api("GET", button.dataset.classesUrl);
  if (!result.ok) return;
  legend.replaceChildren(...result.data.classes.map((index) => el("li", { "data-class": index },
    palette[index] ? el("span", { class: "swatch", style: `background: ${rgb(palette[index])}` }) : null,
    ` ${index} ${names[index] ?? (index === Number(gallery.dataset.ignore) ? "ignored" : `value ${index}`)}`)));
}

gallery?.addEventListener("click", (event) => {
  const button = event.target.closest(".record-open");
  if (button) open(button);
});
