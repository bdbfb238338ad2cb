// The hashsearch page: pick or drop a query image, POST it to /search, show the ranked grid.
// Plain DOM, no build step. body[data-state] is idle | searching | done | error, and
// body[data-searches] counts the searches answered (tests wait on both).
"use strict";

const $ = (id) => document.getElementById(id);
const STAGES = ["decode", "encode", "stage1", "stage2", "total"];
let query = null; // the File being searched
let classes = []; // class names, for a stable colour per class
let latest = 0; // number of the newest request; older answers are dropped

function setState(state, message = "") {
  document.body.dataset.state = state;
  $("status").textContent = message;
  if (state === "done" || state === "error") {
    document.body.dataset.searches = Number(document.body.dataset.searches) + 1;
  }
}

async function loadInfo() {
  try {
    const response = await fetch("info");
    const info = await response.json();
    classes = info.classes;
    const count = info.count.toLocaleString();
    $("index-info").textContent =
      `${info.method} · ${info.bits} bits · ${count} images${info.dataset ? ` of ${info.dataset}` : ""}`;
  } catch (error) {
    $("index-info").textContent = "the index did not answer";
  }
}

function choose(file) {
  if (!file) return;
  query = file;
  const preview = $("query-image");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("query-name").textContent = `${file.name} · ${(file.size / 1024).toFixed(1)} kB`;
  search();
}

async function search() {
  if (!query) return;
  const number = ++latest;
  const params = new URLSearchParams({
    top: $("top").value,
    rerank: $("rerank-toggle").checked ? "cosine" : "none",
  });
  const body = new FormData();
  body.append("image", query, query.name || "pasted image");
  setState("searching", "Searching…");
  try {
    const response = await fetch(`search?${params}`, { method: "POST", body });
    const answer = await response.json();
    if (number !== latest) return;
    if (!response.ok) throw new Error(answer.detail || response.statusText);
    showResults(answer.results);
    showTimings(answer.timings_ms);
    $("summary").textContent = `${answer.results.length} best of the index, ${
      answer.query.rerank === "none" ? "by Hamming distance" : "re-ranked"}`;
    setState("done", `Answered in ${answer.timings_ms.total.toFixed(1)} ms`);
  } catch (error) {
    if (number === latest) setState("error", error.message);
  }
}

function showResults(results) {
  const items = results.map((hit) => {
    const item = document.createElement("li");
    item.className = "result";
    Object.assign(item.dataset, { rank: hit.rank, id: hit.id, label: hit.label });
    const hue = Math.round((classes.indexOf(hit.label.split(",")[0]) * 360) / Math.max(1, classes.length));
    item.style.setProperty("--hue", hue);
    const image = document.createElement("img");
    Object.assign(image, { src: hit.image_url, alt: hit.label, title: hit.id });
    const caption = document.createElement("div");
    caption.className = "caption";
    caption.innerHTML =
      '<div class="label"></div><div class="scores"><span class="hamming"></span><span class="score"></span></div>';
    caption.querySelector(".label").append(hit.label, rankTag(hit.rank));
    caption.querySelector(".hamming").textContent = `Hamming ${hit.hamming}`;
    caption.querySelector(".score").textContent = hit.score === null ? "" : hit.score.toFixed(3);
    item.append(image, caption);
    return item;
  });
  $("results").replaceChildren(...items);
  $("empty").hidden = items.length > 0;
  $("empty").textContent = "Nothing within that distance.";
}

function rankTag(rank) {
  const tag = document.createElement("span");
  tag.className = "rank";
  tag.textContent = `#${rank}`;
  return tag;
}

function showTimings(timings) {
  const longest = Math.max(...STAGES.map((stage) => timings[stage]), 1e-3);
  for (const stage of STAGES) {
    const row = $("timings").querySelector(`[data-stage="${stage}"]`);
    row.dataset.ms = timings[stage].toFixed(3);
    row.querySelector(".bar").style.width = `${(100 * timings[stage]) / longest}%`;
    row.querySelector(".ms").textContent = `${timings[stage].toFixed(1)} ms`;
  }
  $("timings").hidden = false;
}

function listen() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (event) => choose(event.target.files[0]));
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") $("file-input").click();
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    choose(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const file = [...event.clipboardData.files].find((f) => f.type.startsWith("image/"));
    if (file) choose(file);
  });
  $("rerank-toggle").addEventListener("change", search);
  $("top").addEventListener("change", search);
}

listen();
loadInfo();
