// The live fleet map: polls the map server's JSON every REFRESH_MS and redraws in place.
// No libraries: the map is an SVG in an equirectangular projection (longitude scaled by cos of the
// area's middle latitude, which is true to within 0.1 % over a city), the charts are canvas lines.
// Tests read the DOM: vehicle points carry data-vehicle-id / data-state, alert rows data-vehicle-id /
// data-kind, and <body data-updated> is set after every refresh (ms since the epoch), with
// data-vehicle-count, data-now-ms (the server's clock of the states shown), data-error, data-refresh-ms.
"use strict";

const REFRESH_MS = 2000;
const GEO_REFRESH_MS = 30000; // the occupied zones change slowly; the area never does
const ALERT_LIMIT = 50;
const SVG_NS = "http://www.w3.org/2000/svg";
const STATES = [
  ["in_trip", "In trip"],
  ["parked", "Parked"],
  ["low_battery", "Low battery"],
  ["offline", "Offline"],
];
const PALETTE = ["#1c7ed6", "#2f9e44", "#f08c00", "#ae3ec9", "#e03131", "#0c8599", "#5c940d", "#862e9c"];
const RECENT_ALERT_MS = 30000; // a vehicle is ringed on the map this long after its alert reached the page

const el = (id) => document.getElementById(id);
const view = { width: 1000, height: 1000, project: null };
const points = new Map(); // vehicle_id → <circle>
const latest = new Map(); // vehicle_id → its newest row, for the details box
const alertSeenAt = new Map(); // alert key → when this page first showed it
let fields = {};
let geoLoadedAt = 0;
let firstAlerts = true;

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${url}: ${body.error || response.status}`);
  return body;
}

function svg(name, attributes) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  return node;
}

// --- the map -------------------------------------------------------------------------------------

function setProjection(bbox) {
  const [west, south, east, north] = bbox;
  const padLon = (east - west) * 0.08, padLat = (north - south) * 0.08;
  const minLon = west - padLon, maxLon = east + padLon, minLat = south - padLat, maxLat = north + padLat;
  const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const scale = view.width / ((maxLon - minLon) * k);
  view.height = Math.round((maxLat - minLat) * scale);
  view.project = (lon, lat) => [(lon - minLon) * k * scale, (maxLat - lat) * scale];
  el("map").setAttribute("viewBox", `0 0 ${view.width} ${view.height}`);
}

function ringPoints(ring) {
  return ring.map(([lon, lat]) => view.project(lon, lat).map((v) => v.toFixed(1)).join(",")).join(" ");
}

function ringPath(ring) {
  return "M" + ringPoints(ring).replaceAll(" ", "L") + "Z";
}

async function loadGeo() {
  const geo = await getJSON("/api/geo");
  if (!view.project) setProjection(geo.bbox);
  el("area-name").textContent = geo.name;
  const zones = el("zones");
  zones.replaceChildren(...geo.zones.map((zone) => {
    const polygon = svg("polygon", { class: "zone", points: ringPoints(zone.ring), "data-zone-id": zone.zone_id });
    polygon.appendChild(svg("title")).textContent = `zone ${zone.zone_id}`;
    return polygon;
  }));
  const area = el("area");
  area.replaceChildren(...geo.polygons.map((polygon) =>
    svg("path", { class: "area", d: [polygon.exterior, ...polygon.holes].map(ringPath).join(" ") })));
  geoLoadedAt = Date.now();
}

function drawVehicles(data) {
  fields = Object.fromEntries(data.fields.map((name, index) => [name, index]));
  const layer = el("vehicles");
  const radius = data.total > 20000 ? 1.6 : data.total > 5000 ? 2.4 : 3.6;
  const seen = new Set();
  const perZone = new Map();
  const alerted = recentlyAlertedVehicles();
  for (const row of data.vehicles) {
    const id = row[fields.vehicle_id];
    seen.add(id);
    latest.set(id, row);
    perZone.set(row[fields.zone_id], (perZone.get(row[fields.zone_id]) || 0) + 1);
    let [x, y] = view.project(row[fields.lon], row[fields.lat]);
    // Outside the drawn frame (far beyond the geofence): kept on the frame's edge, ringed red.
    const outside = x < 0 || y < 0 || x > view.width || y > view.height;
    if (outside) {
      x = Math.min(Math.max(x, 0), view.width);
      y = Math.min(Math.max(y, 0), view.height);
    }
    let point = points.get(id);
    if (!point) {
      point = svg("circle", { class: "vehicle", "data-vehicle-id": String(id) });
      points.set(id, point);
      layer.appendChild(point);
    }
    setIfChanged(point, "cx", x.toFixed(1));
    setIfChanged(point, "cy", y.toFixed(1));
    setIfChanged(point, "r", String(radius));
    setIfChanged(point, "data-state", row[fields.state]);
    setIfChanged(point, "data-outside", String(outside));
    point.classList.toggle("alerted", alerted.has(id));
  }
  for (const [id, point] of points) {
    if (!seen.has(id)) {
      point.remove();
      points.delete(id);
      latest.delete(id);
    }
  }
  shadeZones(perZone);
  drawLegend(data.counts);
  el("total").textContent = `${data.total.toLocaleString()} vehicles`;
  document.body.dataset.vehicleCount = String(data.total);
  document.body.dataset.nowMs = String(data.now_ms); // the server's clock for the offline rule
}

function setIfChanged(node, name, value) {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

function shadeZones(perZone) {
  let most = 1;
  for (const count of perZone.values()) most = Math.max(most, count);
  for (const zone of el("zones").children) {
    const count = perZone.get(zone.dataset.zoneId) || 0;
    zone.style.fillOpacity = count ? (0.08 + 0.4 * count / most).toFixed(2) : "0";
    zone.dataset.vehicles = String(count);
  }
}

function drawLegend(counts) {
  el("legend").replaceChildren(...STATES.map(([state, label]) => {
    const item = document.createElement("li");
    item.dataset.state = state;
    item.dataset.count = String(counts[state] || 0);
    item.innerHTML = `<span class="swatch ${state}"></span>${label} <span class="count"></span>`;
    item.querySelector(".count").textContent = (counts[state] || 0).toLocaleString();
    return item;
  }));
}

function showVehicle(event) {
  const id = event.target.dataset && event.target.dataset.vehicleId;
  const row = id !== undefined ? latest.get(Number(id)) : undefined;
  if (!row) return;
  const ago = Math.round((Date.now() - row[fields.last_seen_ms]) / 1000);
  el("vehicle-info").textContent =
    `vehicle ${row[fields.vehicle_id]} (${row[fields.vehicle_type]}): ${row[fields.state].replace("_", " ")}, ` +
    `battery ${row[fields.battery_percent]} %, zone ${row[fields.zone_id]}, last seen ${ago} s ago`;
}

// --- the alerts feed -----------------------------------------------------------------------------

function alertKey(alert) {
  return `${alert.alert_id}|${alert.event_time}|${alert.kind}`;
}

function recentlyAlertedVehicles() {
  const now = Date.now();
  const ids = new Set();
  for (const row of el("alerts").tBodies[0].rows) {
    const at = alertSeenAt.get(row.dataset.key);
    if (row.dataset.vehicleId && at !== undefined && now - at < RECENT_ALERT_MS) ids.add(Number(row.dataset.vehicleId));
  }
  return ids;
}

function drawAlerts(data) {
  const now = Date.now();
  const rows = data.alerts.map((alert) => {
    const key = alertKey(alert);
    const isNew = !alertSeenAt.has(key);
    if (isNew) alertSeenAt.set(key, firstAlerts ? 0 : now); // those already there at load are not news
    const row = document.createElement("tr");
    row.dataset.key = key;
    row.dataset.kind = alert.kind;
    row.dataset.alertId = alert.alert_id || "";
    row.dataset.vehicleId = alert.vehicle_id === null || alert.vehicle_id === undefined ? "" : String(alert.vehicle_id);
    row.className = `${alert.severity || ""}${isNew && !firstAlerts ? " new" : ""}`;
    const when = alert.event_time ? new Date(alert.event_time) : null;
    const cells = [
      ["time", when && !isNaN(when) ? when.toLocaleTimeString([], { hour12: false }) : "?"],
      ["kind", alert.kind.replaceAll("_", " ")],
      ["vehicle", row.dataset.vehicleId || "platform"],
      ["detail", alert.subject || alert.message || ""],
    ];
    for (const [name, text] of cells) {
      const cell = row.insertCell();
      cell.className = name;
      cell.textContent = text;
    }
    row.title = alert.message || "";
    return row;
  });
  // Rebuilt only when the list changed: a row that stays keeps its arrival animation running.
  const body = el("alerts").tBodies[0];
  const before = Array.from(body.rows, (row) => row.dataset.key).join("\n");
  if (before !== rows.map((row) => row.dataset.key).join("\n")) body.replaceChildren(...rows);
  for (const key of alertSeenAt.keys()) {
    if (now - alertSeenAt.get(key) > 3600000 && !rows.some((row) => row.dataset.key === key)) alertSeenAt.delete(key);
  }
  firstAlerts = false;
  el("alert-count").textContent = `newest ${data.count}`;
  document.body.dataset.alertCount = String(data.count);
}

// --- the charts ----------------------------------------------------------------------------------

function niceMax(value) {
  if (!(value > 0)) return 1;
  const magnitude = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

function formatNumber(value) {
  if (value === null || value === undefined || isNaN(value)) return "–";
  if (Math.abs(value) >= 10000) return `${(value / 1000).toFixed(0)}K`;
  if (Math.abs(value) >= 1000) return `${(value / 1000).toFixed(1)}K`;
  return value >= 100 ? value.toFixed(0) : value.toFixed(1).replace(/\.0$/, "");
}

function drawChart(canvas, legend, times, series) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  g.font = "11px system-ui, sans-serif";
  const names = Object.keys(series).sort();
  canvas.dataset.series = names.join(",");
  canvas.dataset.points = String(times.length);
  const left = 40, right = 8, top = 8, bottom = 18;
  const plotW = width - left - right, plotH = height - top - bottom;
  if (times.length < 2 || names.length === 0) {
    g.fillStyle = "#868e96";
    g.fillText("no data yet", left + 8, top + plotH / 2);
    legend.replaceChildren();
    return;
  }
  let most = 0;
  for (const name of names) for (const v of series[name]) if (v !== null && v > most) most = v;
  const yMax = niceMax(most);
  const t0 = times[0], t1 = times[times.length - 1];
  const x = (t) => left + (t1 === t0 ? plotW : (t - t0) / (t1 - t0) * plotW);
  const y = (v) => top + plotH - v / yMax * plotH;

  g.strokeStyle = "#e9ecef";
  g.fillStyle = "#868e96";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = yMax * i / 4;
    g.beginPath();
    g.moveTo(left, y(v));
    g.lineTo(left + plotW, y(v));
    g.stroke();
    g.textAlign = "right";
    g.fillText(formatNumber(v), left - 4, y(v) + 4);
  }
  g.textAlign = "left";
  g.fillText(`-${Math.round(t1 - t0)} s`, left, height - 4);
  g.textAlign = "right";
  g.fillText("now", left + plotW, height - 4);

  g.lineWidth = 1.6;
  legend.replaceChildren(...names.map((name, index) => {
    const colour = PALETTE[index % PALETTE.length];
    const values = series[name];
    g.strokeStyle = colour;
    g.beginPath();
    let drawing = false;
    values.forEach((v, i) => {
      if (v === null || v === undefined || i >= times.length) { drawing = false; return; }
      if (drawing) g.lineTo(x(times[i]), y(v)); else g.moveTo(x(times[i]), y(v));
      drawing = true;
    });
    g.stroke();
    const item = document.createElement("li");
    item.dataset.series = name;
    item.innerHTML = `<span class="swatch" style="background:${colour}"></span><span class="name"></span> <span class="value"></span>`;
    item.querySelector(".name").textContent = name;
    item.querySelector(".value").textContent = formatNumber(values[values.length - 1]);
    return item;
  }));
}

function drawCharts(metrics) {
  drawChart(el("throughput-chart"), el("throughput-legend"), metrics.t, metrics.rates || {});
  drawChart(el("lag-chart"), el("lag-legend"), metrics.t, metrics.lag || {});
}

// --- the refresh loop ----------------------------------------------------------------------------

async function refresh() {
  const problems = [];
  const started = performance.now();
  try {
    if (!view.project || Date.now() - geoLoadedAt > GEO_REFRESH_MS) {
      await loadGeo().catch((error) => { problems.push(error.message); });
    }
    // Each part on its own: a failing collector must not blank the map.
    const [vehicles, alerts, metrics] = await Promise.allSettled([
      getJSON("/api/vehicles"), getJSON(`/api/alerts?limit=${ALERT_LIMIT}`), getJSON("/api/metrics"),
    ]);
    if (alerts.status === "fulfilled") drawAlerts(alerts.value); // first: the map rings the vehicles just alerted
    if (view.project && vehicles.status === "fulfilled") drawVehicles(vehicles.value);
    if (metrics.status === "fulfilled") drawCharts(metrics.value);
    for (const part of [vehicles, alerts, metrics]) if (part.status === "rejected") problems.push(part.reason.message);
  } catch (error) {
    problems.push(String(error));
  } finally {
    const now = new Date();
    el("updated").textContent = `updated ${now.toLocaleTimeString([], { hour12: false })}`;
    el("error").hidden = problems.length === 0;
    el("error").textContent = problems.join("; ");
    document.body.dataset.error = problems.join("; ");
    document.body.dataset.updated = String(now.getTime());
    document.body.dataset.refreshMs = String(Math.round(performance.now() - started)); // fetch + draw
    setTimeout(refresh, REFRESH_MS);
  }
}

el("vehicles").addEventListener("mouseover", showVehicle);
refresh();
