// Tandem's dashboard, enhanced: the server sends whole pages of HTML (readable without this
// script); here the live parts are fetched again as HTML fragments from the same templates, and
// the charts are drawn with uPlot from the job's series. Nothing here writes anything anywhere.
"use strict";

const REFRESH_MS = 3000;
// One colour per worker, distinguishable in colour-blindness (Okabe-Ito), and told apart by the
// legend's names as well.
const COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

async function refresh(target, url) {
  try {
    const response = await fetch(url, {headers: {"Accept": "text/html"}});
    if (response.ok) target.innerHTML = await response.text();
  } catch (error) {
    // The dashboard was stopped or the network dropped: the page keeps what it shows.
  }
}

function keepLive(element, target) {
  const url = element.dataset.live;
  if (!url) return;
  const tick = async () => {
    await refresh(target, url);
    if (element.dataset.running !== undefined || element.tagName === "TABLE") setTimeout(tick, REFRESH_MS);
  };
  setTimeout(tick, REFRESH_MS);
}

function chartSpec(title, unit, data, lines) {
  const series = [{label: "time"}];
  lines.forEach(([label, values], i) => {
    series.push({label: label, stroke: COLOURS[i % COLOURS.length], width: 2, points: {show: values.length < 60},
                 value: (u, v) => v == null ? "-" : `${v.toPrecision(4)} ${unit}`});
  });
  return {title: title, series: series, data: [data.t, ...lines.map(([, values]) => values)]};
}

function charts(data) {
  const specs = [];
  const workers = Object.keys(data.workers).sort((a, b) => a - b);
  const perWorker = (key) => workers.map((w) => [`worker ${w}`, data.workers[w][key]]);
  const hasValues = (lines) => lines.some(([, values]) => values.some((v) => v != null));
  const candidates = [
    ["Throughput per worker", "samples/s", perWorker("throughput")],
    ["Median step time per worker", "s", perWorker("step_time_p50")],
    ["GPU use per worker", "%", perWorker("gpu_utilization")],
    ["Scaling efficiency", "", [["efficiency", data.efficiency]]],
  ];
  for (const [title, unit, lines] of candidates) {
    if (hasValues(lines)) specs.push(chartSpec(title, unit, data, lines));
  }
  return specs;
}

async function drawCharts(holder) {
  let data;
  try {
    const response = await fetch(holder.dataset.series);
    if (!response.ok) return;
    data = await response.json();
  } catch (error) {
    return;
  }
  holder.replaceChildren();
  const width = Math.max(320, Math.min(holder.clientWidth || 800, 1100));
  for (const spec of charts(data)) {
    const box = document.createElement("div");
    box.className = "chart";
    box.setAttribute("role", "img");
    box.setAttribute("aria-label", `${spec.title}: ${spec.series.length - 1} lines over ${data.t.length} samples; the table below gives them in words`);
    const heading = document.createElement("h3");
    heading.textContent = spec.title;
    box.appendChild(heading);
    holder.appendChild(box);
    new uPlot({width: width, height: 220, series: spec.series, scales: {x: {time: true}}}, spec.data, box);
  }
  holder.dataset.drawn = String(data.t.length);
  if (holder.dataset.running !== undefined) setTimeout(() => drawCharts(holder), REFRESH_MS * 2);
}

document.addEventListener("DOMContentLoaded", () => {
  const jobs = document.querySelector("table.jobs");
  if (jobs) keepLive(jobs, document.getElementById("rows"));
  for (const id of ["live", "logs"]) {
    const part = document.getElementById(id);
    if (part) keepLive(part, part);
  }
  const holder = document.getElementById("charts");
  if (holder && window.uPlot) drawCharts(holder);
});
