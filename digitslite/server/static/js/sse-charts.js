// Live training charts drawn with plotly.js (served by this server from the plotly package): loss,
// accuracy and mean IU, learning rate. Records arrive from the job's Server-Sent Events; charts
// redraw at most once per animation frame and keep the user's zoom (uirevision).

const SERIES = {
  "chart-loss": [
    { phase: "train", key: "loss", name: "train loss" },
    { phase: "val", key: "loss", name: "val loss" },
  ],
  "chart-quality": [
    { phase: "val", key: "mean_iu", name: "val mean IU" },
    { phase: "val", key: "pixel_accuracy", name: "val pixel accuracy" },
    { phase: "val", key: "mean_accuracy", name: "val mean accuracy" },
    { phase: "train", key: "accuracy", name: "train accuracy" },
  ],
  "chart-colour": [{ phase: "val", key: "ab_auc", name: "val ab AuC (t = 0..150)" }],
  "chart-colour-values": [
    { phase: "val", key: "ab_error", name: "val mean ab error" },
    { phase: "val", key: "psnr", name: "val PSNR (dB)" },
    { phase: "val", key: "colourfulness", name: "val colourfulness" },
    { phase: "val", key: "truth_colourfulness", name: "truth colourfulness" },
  ],
  "chart-lr": [{ phase: "train", key: "lr", name: "learning rate" }],
};
const PERCENT_CHARTS = new Set(["chart-quality", "chart-colour"]);

export function createCharts() {
  const points = new Map(); // chart id -> [{x: [], y: []} per series]
  let pending = false;
  let revision = 0; // the arrays grow in place: a new datarevision tells plotly to look again
  for (const [id, series] of Object.entries(SERIES)) points.set(id, series.map(() => ({ x: [], y: [] })));

  function layout(id) {
    const log = document.querySelector(`[data-log="${id}"]`)?.checked;
    return {
      uirevision: id, datarevision: revision, height: 270, margin: { l: 56, r: 12, t: 30, b: 44 }, hovermode: "x unified",
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
      xaxis: { title: { text: "iteration", standoff: 6 } },
      yaxis: { type: log ? "log" : "linear", rangemode: "tozero", exponentformat: "e",
        tickformat: PERCENT_CHARTS.has(id) ? ".0%" : undefined },
    };
  }

  function draw() {
    pending = false;
    revision += 1;
    for (const [id, series] of Object.entries(SERIES)) {
      if (!document.getElementById(id)) continue; // a chart of another task
      const data = points.get(id);
      const traces = series.map((spec, index) => ({ ...data[index], name: spec.name, mode: "lines+markers",
        marker: { size: 4 }, line: { width: 2 }, visible: data[index].x.length ? true : false }));
      window.Plotly.react(id, traces, layout(id), { displaylogo: false, responsive: true });
    }
  }

  function schedule() {
    if (!pending) {
      pending = true;
      requestAnimationFrame(draw);
    }
  }

  document.querySelectorAll("[data-log]").forEach((box) => box.addEventListener("change", schedule));

  return {
    add(records) {
      for (const record of records) {
        for (const [id, series] of Object.entries(SERIES)) {
          series.forEach((spec, index) => {
            const value = record[spec.key];
            if (record.phase === spec.phase && typeof value === "number") {
              points.get(id)[index].x.push(record.iteration);
              points.get(id)[index].y.push(value);
            }
          });
        }
      }
      schedule();
    },
    reset() {
      for (const data of points.values()) data.forEach((series) => { series.x = []; series.y = []; });
      schedule();
    },
  };
}
