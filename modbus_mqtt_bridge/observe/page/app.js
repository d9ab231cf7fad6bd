// The status page: polls the bridge's JSON API and draws it. Read-only.
// Every string that comes from the config or a device is put in the page with textContent
// or setAttribute, never parsed as HTML; the Content-Security-Policy allows this file only.
"use strict";

const REFRESH_MS = 3000;
const SVG = "http://www.w3.org/2000/svg";
const cards = new Map(); // device name -> {root, parts, rows: Map(register -> row)}
const history = new Map(); // "device\u0000register" -> [[ms, value], ...]
let historyLimit = 120;
let unreachableSince = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function fact(list, label, value) {
  const row = el("div");
  row.append(el("dt", null, label), el("dd", null, value));
  list.append(row);
  return row;
}

function badge(node, kind, text) {
  node.className = "badge " + kind;
  node.textContent = text;
}

function api(path) {
  return fetch(path, { cache: "no-store" }).then((response) => {
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  });
}

function devicePath(name) {
  return "/api/devices/" + encodeURIComponent(name);
}

function clock(iso) {
  if (!iso) return "never";
  const when = new Date(iso);
  const ago = Math.max(0, Math.round((Date.now() - when.getTime()) / 1000));
  return when.toLocaleTimeString() + " (" + ago + " s ago)";
}

function duration(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return (h ? h + " h " : "") + (h || m ? m + " min " : "") + (s % 60) + " s";
}

function shown(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number" && !Number.isInteger(value)) {
    return String(Number(value.toPrecision(6)));
  }
  return String(value);
}

// -- the bridge and its connections ---------------------------------------------------

function drawBridge(bridge) {
  document.getElementById("site").textContent = bridge.site;
  document.title = "modbus-mqtt-bridge · " + bridge.site;
  historyLimit = bridge.history;
  const facts = document.getElementById("bridge");
  clear(facts);
  const broker = el("span");
  badge(broker, bridge.broker.connected ? "connected" : "down",
    bridge.broker.connected ? "connected" : "not connected");
  fact(facts, "broker", bridge.broker.url).lastChild.append(" ", broker);
  fact(facts, "uptime", duration(bridge.uptime_s));
  fact(facts, "version", bridge.version);
  fact(facts, "buffered", bridge.buffer.readings + " readings");
  fact(facts, "readings/s", bridge.readings_per_s);

  const body = document.querySelector("#connections tbody");
  clear(body);
  for (const conn of bridge.connections) {
    const row = el("tr");
    const state = el("span");
    badge(state, conn.state, conn.state);
    const stateCell = el("td");
    stateCell.append(state);
    const load = el("td");
    if (conn.bus) {
      const over = conn.bus.load > conn.bus.limit;
      const meter = el("span", over ? "meter over" : "meter");
      const fill = el("span");
      fill.style.width = Math.min(100, conn.bus.load * 100) + "%";
      meter.append(fill);
      load.append(meter, Math.round(conn.bus.load * 100) + "% of the wire time");
    } else {
      load.textContent = "–";
    }
    row.append(el("td", null, conn.name), el("td", null, conn.type), stateCell,
      el("td", "num", conn.requests), el("td", "num", conn.errors), load);
    body.append(row);
  }
}

// -- devices --------------------------------------------------------------------------

function card(name) {
  let entry = cards.get(name);
  if (entry) return entry;
  const root = el("article", "device");
  root.dataset.device = name;
  const title = el("h3");
  const label = el("span", "name", name);
  const state = el("span", "badge state");
  title.append(label, state);
  const facts = el("dl", "facts");
  const table = el("table");
  const head = el("tr");
  for (const column of ["Register", "Value", "Read", "Quality", "History"]) {
    head.append(el("th", null, column));
  }
  table.append(el("thead"), el("tbody"));
  table.tHead.append(head);
  root.append(title, facts, table);
  document.getElementById("devices").append(root);
  entry = { root, state, facts, body: table.tBodies[0], rows: new Map() };
  cards.set(name, entry);
  return entry;
}

function drawDevice(device) {
  const entry = card(device.name);
  const since = device.since ? " since " + new Date(device.since).toLocaleTimeString() : "";
  badge(entry.state, device.state, device.state + since);
  entry.state.classList.add("state");
  clear(entry.facts);
  fact(entry.facts, "connection", device.connection + " · unit " + device.unit);
  fact(entry.facts, "last read", clock(device.last_read));
  const error = fact(entry.facts, "last error",
    device.last_error ? device.last_error + " (" + clock(device.last_error_at) + ")" : "none");
  if (device.last_error) error.lastChild.className = "error";
  const backoff = device.backoff.failures_in_a_row
    ? device.backoff.failures_in_a_row + " failures, retry in " + device.backoff.retry_in_s + " s"
    : "none";
  fact(entry.facts, "backoff", backoff);
}

function drawRegisters(device, registers) {
  const entry = card(device);
  for (const register of registers) {
    let row = entry.rows.get(register.name);
    if (!row) {
      row = el("tr");
      row.dataset.register = register.name;
      const quality = el("span", "badge");
      const qualityCell = el("td");
      qualityCell.append(quality);
      const sparkCell = el("td");
      const spark = document.createElementNS(SVG, "svg");
      spark.setAttribute("class", "spark");
      spark.setAttribute("viewBox", "0 0 120 24");
      spark.setAttribute("preserveAspectRatio", "none");
      const line = document.createElementNS(SVG, "polyline");
      spark.append(line);
      sparkCell.append(spark);
      row.append(el("td", "register", register.name), el("td", "num value"), el("td", "read"),
        qualityCell, sparkCell);
      row.parts = { value: row.cells[1], read: row.cells[2], quality, line };
      entry.rows.set(register.name, row);
      entry.body.append(row);
      loadHistory(device, register.name, row);
    }
    const unit = register.unit ? " " + register.unit : "";
    row.parts.value.textContent = shown(register.value) + (register.value === null ? "" : unit);
    row.parts.read.textContent = register.ts ? clock(register.ts) : "never";
    badge(row.parts.quality, register.quality, register.quality);
    if (register.error) row.parts.quality.title = register.error;
    addPoint(device, register.name, register.ts, register.value, row);
  }
}

// -- sparklines: the kept history once, then each new reading appended ----------------

function loadHistory(device, register, row) {
  const key = device + "\u0000" + register;
  history.set(key, []);
  api(devicePath(device) + "/history?register=" + encodeURIComponent(register))
    .then((answer) => {
      const points = answer.readings.map((r) => [Date.parse(r.ts), r.value]);
      const newer = (history.get(key) || []).filter((p) => points.length === 0 ||
        p[0] > points[points.length - 1][0]);
      history.set(key, points.concat(newer).slice(-historyLimit));
      drawSpark(key, row);
    })
    .catch(() => history.delete(key));
}

function addPoint(device, register, ts, value, row) {
  const key = device + "\u0000" + register;
  const points = history.get(key);
  if (!points || !ts || typeof value === "string" || value === null) return;
  const ms = Date.parse(ts);
  if (points.length && points[points.length - 1][0] >= ms) return;
  points.push([ms, Number(value)]);
  if (points.length > historyLimit) points.splice(0, points.length - historyLimit);
  drawSpark(key, row);
}

function drawSpark(key, row) {
  const points = history.get(key) || [];
  if (points.length < 2) {
    row.parts.line.setAttribute("points", "");
    return;
  }
  const values = points.map((p) => Number(p[1]));
  const lo = Math.min(...values), hi = Math.max(...values);
  const t0 = points[0][0], span = points[points.length - 1][0] - t0 || 1;
  const coords = points.map((p, i) => {
    const x = (p[0] - t0) / span * 118 + 1;
    const y = hi === lo ? 12 : 22 - (values[i] - lo) / (hi - lo) * 20;
    return x.toFixed(1) + "," + y.toFixed(1);
  });
  row.parts.line.setAttribute("points", coords.join(" "));
}

// -- the refresh loop -----------------------------------------------------------------

function reachable() {
  unreachableSince = null;
  document.body.classList.remove("unreachable");
  document.getElementById("banner").hidden = true;
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

function unreachable(error) {
  if (unreachableSince === null) unreachableSince = new Date();
  document.body.classList.add("unreachable");
  const banner = document.getElementById("banner");
  banner.textContent = "Bridge unreachable since " + unreachableSince.toLocaleTimeString() +
    " — retrying every " + REFRESH_MS / 1000 + " s. The values below are from before. (" +
    error.message + ")";
  banner.hidden = false;
}

async function refresh() {
  try {
    const overview = await api("/api/devices");
    drawBridge(overview.bridge);
    const details = await Promise.all(overview.devices.map((d) => api(devicePath(d.name))));
    for (const device of details) {
      drawDevice(device);
      drawRegisters(device.name, device.registers);
    }
    reachable();
  } catch (error) {
    unreachable(error);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
