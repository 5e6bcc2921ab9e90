// The explorer page: keeps the state, sends it whole to /api/render on every change.
"use strict";

const state = { seed: 0, class: null, walk: {}, off: {}, strokes: [] };
let info = null;
let pending = null;
let busy = false;
let painting = null;

const $ = (id) => document.getElementById(id);

async function render() {
  if (busy) { pending = true; return; }
  busy = true;
  document.body.dataset.idle = "0";
  try {
    const reply = await fetch("/api/render", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(state),
    });
    const data = await reply.json().catch(() => ({ error: `the server answered ${reply.status}` }));
    if (!reply.ok) { $("error").textContent = data.error || `error ${reply.status}`; return; }
    $("error").textContent = "";
    $("image").src = data.image;
    $("strip").src = data.strip;
    $("latency").textContent = `rendered in ${data.ms} ms`;
    document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
  } catch (err) {
    $("error").textContent = `no answer from the explorer (${err.message}); is it still running?`;
  } finally {
    busy = false;
    if (pending) { pending = null; render(); } else { document.body.dataset.idle = "1"; }
  }
}

function directionSliders() {
  const box = $("directions");
  info.directions.forEach((name, i) => {
    const row = document.createElement("div");
    row.className = "direction";
    row.innerHTML = `<label for="dir-${i}">${name}</label><input type="range" id="dir-${i}"
      min="-4" max="4" step="0.1" value="0"><output id="dir-${i}-value">0</output>`;
    box.appendChild(row);
    const slider = row.querySelector("input");
    slider.addEventListener("input", () => {
      const amount = Number(slider.value);
      $(`dir-${i}-value`).textContent = amount.toFixed(1);
      if (amount === 0) delete state.walk[name]; else state.walk[name] = amount;
      render();
    });
  });
}

function unitToggles() {
  const box = $("units");
  for (const layer of info.layers) {
    const group = document.createElement("div");
    group.className = "layer-units";
    group.innerHTML = `<strong>${layer.name}</strong> (${layer.units} units) `;
    for (let u = 0; u < layer.units; u++) {
      const label = document.createElement("label");
      label.innerHTML = `<input type="checkbox" checked id="unit-${layer.name}-${u}"> ${u}`;
      label.querySelector("input").addEventListener("change", (event) => {
        const off = new Set(state.off[layer.name] || []);
        if (event.target.checked) off.delete(u); else off.add(u);
        state.off[layer.name] = [...off].sort((a, b) => a - b);
        render();
      });
      group.appendChild(label);
    }
    box.appendChild(group);
  }
}

function brushControls() {
  const select = $("brush-layer");
  for (const layer of info.layers) {
    select.add(new Option(`${layer.name} (${layer.units} units)`, layer.name));
  }
  const pick = () => {
    const layer = info.layers.find((l) => l.name === select.value);
    $("brush-units").value = layer.brush.join(",");
  };
  select.addEventListener("change", pick);
  pick();
  $("clear-paint").addEventListener("click", () => {
    state.strokes = [];
    drawStrokes();
    render();
  });
}

function cellOf(event) {
  const canvas = $("brush");
  const box = canvas.getBoundingClientRect();
  const n = info.image_size;
  const x = Math.floor(((event.clientX - box.left) / box.width) * n);
  const y = Math.floor(((event.clientY - box.top) / box.height) * n);
  return [Math.min(n - 1, Math.max(0, x)), Math.min(n - 1, Math.max(0, y))];
}

function dab(event) {
  const n = info.image_size;
  const r = Number($("brush-size").value);
  const [x, y] = cellOf(event);
  for (let dy = -r; dy <= r; dy++) {
    for (let dx = -r; dx <= r; dx++) {
      const yy = y + dy, xx = x + dx;
      if (yy >= 0 && yy < n && xx >= 0 && xx < n) painting[yy * n + xx] = 1;
    }
  }
  const ctx = $("brush").getContext("2d");
  ctx.fillStyle = $("brush-mode").value === "insert" ? "rgba(60,140,255,0.35)"
    : "rgba(255,80,60,0.35)";
  ctx.fillRect(x - r, y - r, 2 * r + 1, 2 * r + 1);
}

function drawStrokes() {  // what is painted stays visible, faintly
  const n = info.image_size;
  const ctx = $("brush").getContext("2d");
  ctx.clearRect(0, 0, n, n);
  for (const stroke of state.strokes) {
    ctx.fillStyle = stroke.mode === "insert" ? "rgba(60,140,255,0.18)" : "rgba(255,80,60,0.18)";
    for (let i = 0; i < stroke.mask.length; i++) {
      if (stroke.mask[i] === "1") ctx.fillRect(i % n, Math.floor(i / n), 1, 1);
    }
  }
}

function paintbrush() {
  const canvas = $("brush");
  canvas.width = canvas.height = info.image_size;
  canvas.addEventListener("pointerdown", (event) => {
    painting = new Uint8Array(info.image_size * info.image_size);
    canvas.setPointerCapture(event.pointerId);
    dab(event);
  });
  canvas.addEventListener("pointermove", (event) => { if (painting) dab(event); });
  const finish = () => {
    if (!painting) return;
    const units = $("brush-units").value.split(",").map((s) => s.trim()).filter(Boolean)
      .map(Number);
    state.strokes.push({ layer: $("brush-layer").value, units, mode: $("brush-mode").value,
      mask: Array.from(painting).join("") });
    painting = null;
    drawStrokes();
    render();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
}

async function start() {
  info = await (await fetch("/api/info")).json();
  $("model").textContent = `${info.network}, step ${info.step}`;
  if (info.classes.length) {
    $("class-row").hidden = false;
    info.classes.forEach((name, i) => $("class").add(new Option(name, String(i))));
    state.class = 0;
    $("class").addEventListener("change", () => { state.class = Number($("class").value); render(); });
  }
  $("seed").addEventListener("change", () => {
    state.seed = Math.max(0, Math.floor(Number($("seed").value) || 0));
    render();
  });
  $("random").addEventListener("click", () => {
    state.seed = Math.floor(Math.random() * 1e9);
    $("seed").value = state.seed;
    render();
  });
  $("reset-walk").addEventListener("click", () => {
    state.walk = {};
    document.querySelectorAll(".direction input").forEach((s) => { s.value = 0; });
    document.querySelectorAll(".direction output").forEach((o) => { o.textContent = "0"; });
    render();
  });
  directionSliders();
  if (info.layers.length) {
    brushControls();
    unitToggles();
    paintbrush();
  } else {  // flat layers only (the 2014 MLP): nothing to toggle or paint
    document.querySelectorAll(".needs-maps").forEach((e) => { e.hidden = true; });
  }
  await render();
}

start();
