// A colorization inference page: the temperature slider decodes each stored bin distribution again
// on the server (the net does not run again); the pictures and their download links follow it.
const slider = document.getElementById("temperature");
const readout = document.getElementById("temperature-value");
const DELAY_MS = 120; // one request per pause of the slider, not one per pixel it moves

function decodeAt(temperature) {
  for (const image of document.querySelectorAll("img.colourised[data-recolour]")) {
    image.src = `${image.dataset.base}?temperature=${temperature}`;
    const link = image.closest(".result").querySelector("a.download");
    link.href = `${link.dataset.base}?temperature=${temperature}&download=1`;
  }
}

if (slider) {
  let timer = null;
  slider.addEventListener("input", () => {
    readout.textContent = slider.value;
    clearTimeout(timer);
    timer = setTimeout(() => decodeAt(slider.value), DELAY_MS);
  });
}
