// The portledger dashboard: the range and its allocations, live from the
// event stream; the same at any moment of the log's life (the time slider);
// a port's timeline and history; usage per service; the watchdog; a release
// button. Plain DOM and SVG, no library. Every value from the ledger goes in
// through textContent or an attribute, never as markup.

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

const state = {
  live: true,       // following the present
  at: null,         // Date shown when not live
  status: null,     // the last status shown
  first: null,      // Date of the log's first event
  stream: null,     // the EventSource while live
  pending: null,    // debounce timer of a live refresh
  seq: 0,           // guards against answers arriving out of order
  canWrite: true,   // false once a write was refused for want of the token
  readOnly: false,  // no session: only the open routes answer (status, allocations)
  poller: null,     // the status poll that stands in for the stream when read-only
};

// ---- helpers --------------------------------------------------------------

async function getJSON(path) {
  const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = new Error(body.error || r.statusText);
    err.status = r.status;
    err.code = body.code;
    throw err;
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function svgEl(tag, attrs = {}, title) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (title) {
    const t = document.createElementNS(SVG, "title");
    t.textContent = title;
    e.append(t);
  }
  return e;
}

// One formatter for every time shown: making one per call (toLocaleString
// with options) costs about a millisecond, a second for a thousand rows.
const timeFormat = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });

function fmtTime(d) {
  if (!d) return "";
  return timeFormat.format(d instanceof Date ? d : new Date(d));
}

function fmtDuration(s) {
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function ago(d) {
  return fmtDuration(Math.max(0, (Date.now() - new Date(d).getTime()) / 1000)) + " ago";
}

// toLocalInput formats a Date for <input type="datetime-local">.
function toLocalInput(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function say(text) { $("message").textContent = text || ""; }

function healthOf(a) { return a.health_status === "active" ? "healthy" : (a.health_status || "starting"); }

// eventDetail is one line about an event for the tables.
function eventDetail(e) {
  switch (e.type) {
    case "allocated": return `${e.service_name}${e.purpose ? " — " + e.purpose : ""}${e.started_by ? " (by " + e.started_by + ")" : ""}`;
    case "released": return `${e.reason || "released"}${e.released_by ? " (by " + e.released_by + ")" : ""}`;
    case "health_changed": return `${e.from || "?"} → ${e.to}: ${e.reason || ""}`;
    case "pid_registered": return `pid ${e.pid}`;
    case "stats_reported": return `${e.request_count} requests, ${e.error_count} errors`;
    case "conflict_detected": return `foreign pid ${e.pid}: ${e.command || ""}`;
    case "range_changed": return `${e.from} → ${e.to}`;
  }
  return "";
}

// ---- the registry: strip and table ----------------------------------------

function parseRange(s) {
  const m = /^(\d+)-(\d+)$/.exec(s || "");
  return m ? [Number(m[1]), Number(m[2])] : [0, -1];
}

function renderStatus(st) {
  state.status = st;
  const pm = st.port_manager;
  document.body.dataset.asof = pm.as_of || "";
  $("range").textContent = `range ${pm.port_range} · ${pm.allocated_ports} held · ${pm.available_ports} free`;
  renderWatchdog(st.watchdog);
  if (st.fleet) renderFleetSelf(st.fleet);
  if (st.fleet || state.fleet) { state.fleet = true; loadFleet(); }
  renderStrip(pm);
  renderTable(pm.allocations || []);
}

function renderWatchdog(w) {
  if (!w) return;
  const parts = [w.running ? `watchdog every ${fmtDuration(w.check_interval)}` : "watchdog stopped",
    `${w.checks_performed} sweeps`, `${w.issues_detected} issues`];
  if (w.last_sweep_at) parts.push(`last sweep ${ago(w.last_sweep_at)} (${(w.last_sweep_ms || 0).toFixed(1)} ms)`);
  $("watchdog").textContent = parts.join(" · ");
  $("watchdog").dataset.running = String(!!w.running);
}

const MAX_CELLS = 4096;

function renderStrip(pm) {
  const [lo, hi] = parseRange(pm.port_range);
  const n = Math.max(0, Math.min(hi - lo + 1, MAX_CELLS));
  const held = new Map((pm.allocations || []).map((a) => [a.port, a]));
  const foreign = new Map((pm.conflicts || []).map((c) => [c.port, c]));
  const svg = $("strip");
  // About 18 screen pixels a port, between 10 and 50 ports a row.
  const cols = Math.min(Math.max(10, Math.floor((svg.clientWidth || 900) / 18)), 50, Math.max(n, 1)), cell = 14;
  const rows = Math.ceil(n / cols);
  svg.setAttribute("viewBox", `0 0 ${cols * cell} ${Math.max(rows, 1) * cell}`);
  const frag = document.createDocumentFragment();
  for (let i = 0; i < n; i++) {
    const port = lo + i, a = held.get(port), f = foreign.get(port);
    let cls = "free", title = `${port}: free`;
    if (a) {
      const h = healthOf(a);
      cls = h === "unhealthy" ? "unhealthy" : h === "dead" ? "dead" : "held";
      title = `${port}: ${a.service_name} (${h})`;
    } else if (f) {
      cls = "foreign";
      title = `${port}: foreign pid ${f.pid} ${f.command || ""}`;
    }
    frag.append(svgEl("rect", { x: (i % cols) * cell, y: Math.floor(i / cols) * cell, width: cell, height: cell, class: cls, "data-port": port }, title));
  }
  svg.replaceChildren(frag);
}

// esc makes a value safe to put into markup, as text or in a quoted
// attribute.
function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// The allocations table draws only the rows in its scroll window (plus a
// margin), between two spacer rows that keep the scrollbar true: a
// thousand allocations cost the layout of a screenful, on the first draw
// and on every live refresh.
const ROW_H = 34;     // px, fixed by the style sheet (#alloc-rows tr)
const OVERSCAN = 20;  // rows drawn beyond each edge of the window

function rowHTML(a) {
  const h = healthOf(a);
  return `<tr data-port="${a.port}" data-service="${esc(a.service_name)}">` +
    `<td><a href="#/port/${a.port}">${a.port}</a></td>` +
    `<td>${esc(a.service_name)}</td>` +
    `<td>${a.pid ? a.pid : "—"}</td>` +
    `<td><span class="health ${esc(h)}">${esc(h)}</span></td>` +
    `<td title="${esc(a.allocated_at)}">${esc(fmtTime(a.allocated_at))}</td>` +
    `<td class="optional" title="${esc(a.purpose)}">${esc(a.purpose)}</td>` +
    `<td class="optional">${esc(a.started_by)}</td>` +
    `<td>${Number(a.request_count) || 0} / ${Number(a.error_count) || 0}</td>` +
    `<td><button type="button" class="release" title="release port ${a.port}"${state.live ? "" : " disabled"}>release</button></td></tr>`;
}

// renderTable takes a new list of allocations and draws its window.
function renderTable(allocs) {
  state.allocs = new Map(allocs.map((a) => [a.port, a]));
  state.sorted = [...allocs].sort((x, y) => x.port - y.port);
  $("count").textContent = `(${allocs.length})`;
  $("allocs").dataset.count = String(allocs.length);
  drawRows();
  if (!document.body.dataset.drawn) {
    // The first draw, what the load benchmark measures: the rows are laid
    // out and painted when a task queued from the next frame runs.
    requestAnimationFrame(() => setTimeout(() => {
      performance.mark("table-drawn");
      document.body.dataset.drawn = String(performance.now());
    }, 0));
  }
}

// drawRows draws the rows of the table's scroll window.
function drawRows() {
  const list = state.sorted || [];
  const box = $("alloc-scroll");
  const headH = $("allocs").tHead ? $("allocs").tHead.offsetHeight : 0;
  const top = Math.max(0, box.scrollTop - headH);
  const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
  const shown = Math.ceil((box.clientHeight || 600) / ROW_H) + 2 * OVERSCAN;
  const last = Math.min(list.length, first + shown);
  const parts = [];
  // The spacers' heights are set through the CSSOM below: the page's
  // content security policy refuses style attributes in markup.
  if (first > 0) parts.push(`<tr class="spacer" aria-hidden="true"><td colspan="9" data-h="${first * ROW_H}"></td></tr>`);
  for (let i = first; i < last; i++) parts.push(rowHTML(list[i]));
  if (last < list.length) parts.push(`<tr class="spacer" aria-hidden="true"><td colspan="9" data-h="${(list.length - last) * ROW_H}"></td></tr>`);
  $("alloc-rows").innerHTML = parts.join("");
  for (const td of $("alloc-rows").querySelectorAll("td[data-h]")) td.style.height = `${td.dataset.h}px`;
  state.window = [first, last];
}

function setupTable() {
  let pending = false;
  $("alloc-scroll").addEventListener("scroll", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      const list = state.sorted || [];
      const [first, last] = state.window || [0, 0];
      const top = Math.floor($("alloc-scroll").scrollTop / ROW_H);
      const rows = Math.ceil($("alloc-scroll").clientHeight / ROW_H);
      if (top < first + OVERSCAN / 2 && first > 0 || top + rows > last - OVERSCAN / 2 && last < list.length) drawRows();
    });
  }, { passive: true });
  $("alloc-rows").addEventListener("click", (ev) => {
    const b = ev.target.closest("button.release");
    if (!b) return;
    const a = state.allocs && state.allocs.get(Number(b.closest("tr").dataset.port));
    if (a) askRelease(a);
  });
  $("strip").addEventListener("click", (ev) => {
    const port = ev.target.getAttribute && ev.target.getAttribute("data-port");
    if (port) location.hash = `#/port/${port}`;
  });
}

// ---- live and past ----------------------------------------------------------

async function refreshLive() {
  const seq = ++state.seq;
  try {
    const st = await getJSON("/api/ports/status");
    if (seq !== state.seq || !state.live) return;
    renderStatus(st);
    setMode("live");
  } catch (err) {
    say(`cannot read the status: ${err.message}`);
    setMode("offline");
  }
}

function scheduleRefresh() {
  if (state.pending) return;
  state.pending = setTimeout(() => { state.pending = null; if (state.live) refreshLive(); }, 100);
}

// setReadOnly switches the page to what answers without the token: the
// status now and in the past. The stream, history, usage and the release
// button need the session that the link `ledger serve` printed gives.
function setReadOnly() {
  state.readOnly = true;
  $("auth").textContent = "read-only: open the link that `ledger serve` printed (it carries the token) for live updates, history, usage and release";
  unfollow();
}

function follow() {
  if (state.readOnly) {
    if (!state.poller) state.poller = setInterval(() => { if (state.live) refreshLive(); }, 2000);
    return;
  }
  if (state.stream) return;
  const es = new EventSource("/api/ports/events");
  state.stream = es;
  es.onmessage = scheduleRefresh;
  for (const t of ["allocated", "released", "health_changed", "pid_registered", "stats_reported", "conflict_detected", "range_changed"]) {
    es.addEventListener(t, scheduleRefresh);
  }
  es.onopen = () => { scheduleRefresh(); setMode("live"); };
  es.onerror = () => {
    // The browser reconnects by itself; a closed stream (refused, or
    // ended by the daemon) falls back to polling until it is back.
    if (es.readyState === EventSource.CLOSED) {
      state.stream = null;
      setTimeout(() => { if (state.live) { refreshLive(); follow(); } }, 2000);
    }
  };
}

function unfollow() {
  if (state.stream) { state.stream.close(); state.stream = null; }
}

function setMode(mode) {
  const b = $("mode");
  b.dataset.mode = mode;
  b.textContent = mode === "past" ? "past" : mode === "offline" ? "offline" : "live";
  document.body.dataset.mode = mode;
}

async function goLive() {
  state.live = true;
  state.at = null;
  $("slider").value = $("slider").max;
  $("when").value = "";
  $("asof").textContent = "";
  $("around").hidden = true;
  await refreshLive();
  follow();
}

async function goPast(at) {
  const now = Date.now();
  if (at.getTime() >= now) return goLive();
  state.live = false;
  state.at = at;
  unfollow();
  setMode("past");
  const seq = ++state.seq;
  const iso = at.toISOString();
  $("when").value = toLocalInput(at);
  $("asof").textContent = `as of ${fmtTime(at)}`;
  try {
    const [st, around] = await Promise.all([
      getJSON(`/api/ports/status?at=${encodeURIComponent(iso)}`),
      eventsAround(at),
    ]);
    if (seq !== state.seq) return;
    renderStatus(st);
    renderAround(around, at);
    document.body.dataset.at = iso;
    say("");
  } catch (err) {
    say(`cannot read the registry at ${iso}: ${err.message}`);
  }
}

// eventsAround fetches the events within five minutes either side of at.
async function eventsAround(at) {
  if (state.readOnly) return [];
  const span = 5 * 60 * 1000;
  const since = new Date(Math.max(at.getTime() - span, state.first ? state.first.getTime() : 0)).toISOString();
  const until = new Date(Math.min(at.getTime() + span, Date.now())).toISOString();
  try {
    const h = await getJSON(`/api/ports/history?since=${encodeURIComponent(since)}&until=${encodeURIComponent(until)}&limit=500`);
    return h.events || [];
  } catch {
    return [];
  }
}

function renderAround(events, at) {
  const t = at.getTime();
  const before = events.filter((e) => new Date(e.at).getTime() <= t).slice(-8);
  const after = events.filter((e) => new Date(e.at).getTime() > t).slice(0, 8);
  const rows = document.createDocumentFragment();
  for (const e of [...before, ...after]) {
    const cls = new Date(e.at).getTime() > t ? "muted" : "";
    rows.append(el("tr", { class: cls, "data-id": e.id },
      el("td", { title: e.at }, fmtTime(e.at)), el("td", {}, e.type),
      el("td", {}, e.port ? String(e.port) : ""), el("td", { class: "wrap" }, eventDetail(e))));
  }
  $("around-rows").replaceChildren(rows);
  $("around").hidden = false;
}

// ---- the fleet (where the daemon runs with --fleet) ------------------------

function renderFleetSelf(f) {
  const lag = f.lag_events ? `${f.lag_events} events behind (${fmtDuration(f.lag_s || 0)})` : "up to date";
  $("fleet-self").textContent = `· this host ${f.host}, ${f.connected ? "connected" : "not connected"} to ${f.url}, ${lag}${f.last_error ? " · " + f.last_error : ""}`;
}

// loadFleet reads every host's allocations, now or at the slider's moment,
// at most every two seconds while live.
async function loadFleet() {
  $("fleet").hidden = false;
  const now = Date.now();
  if (state.live && state.fleetAt && now - state.fleetAt < 2000) return;
  state.fleetAt = now;
  const q = state.live ? "" : `?at=${encodeURIComponent(state.at.toISOString())}`;
  let view;
  try {
    view = await getJSON(`/api/fleet/status${q}`);
  } catch (err) {
    $("fleet-host-rows").replaceChildren(el("tr", {}, el("td", { colSpan: 6, class: "muted" }, `the fleet cannot be read: ${err.message}`)));
    return;
  }
  const hosts = view.hosts || [];
  const hrows = document.createDocumentFragment();
  const arows = [];
  for (const h of hosts) {
    hrows.append(el("tr", { "data-host": h.host },
      el("td", {}, h.host), el("td", {}, h.reachable ? "yes" : "no"),
      el("td", {}, h.last_heard ? ago(h.last_heard) : ""),
      el("td", {}, h.lag_events ? `${h.lag_events} (${fmtDuration(h.lag_s || 0)})` : "0"),
      el("td", {}, h.range || ""), el("td", {}, String((h.allocations || []).length))));
    for (const a of h.allocations || []) arows.push([h.host, a]);
  }
  arows.sort((x, y) => x[0].localeCompare(y[0]) || x[1].port - y[1].port);
  $("fleet-host-rows").replaceChildren(hrows);
  $("fleet-rows").innerHTML = arows.slice(0, 2000).map(([host, a]) => {
    const h = healthOf(a);
    return `<tr data-host="${esc(host)}" data-port="${a.port}"><td>${esc(host)}</td><td>${a.port}</td><td>${esc(a.service_name)}</td>` +
      `<td>${a.pid ? a.pid : "—"}</td><td><span class="health ${esc(h)}">${esc(h)}</span></td>` +
      `<td>${esc(fmtTime(a.allocated_at))}</td><td class="optional">${esc(a.purpose)}</td></tr>`;
  }).join("");
  document.body.dataset.fleet = String(hosts.length);
}

// ---- the slider -------------------------------------------------------------

const SLIDER_STEPS = 1000;

function sliderTime(v) {
  const lo = state.first ? state.first.getTime() : Date.now();
  const hi = Date.now();
  return new Date(lo + (hi - lo) * (Number(v) / SLIDER_STEPS));
}

function setupSlider() {
  const s = $("slider");
  s.max = String(SLIDER_STEPS);
  s.value = String(SLIDER_STEPS);
  let timer = null;
  s.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (Number(s.value) >= SLIDER_STEPS) goLive();
      else goPast(sliderTime(s.value));
    }, 120);
  });
  $("when").addEventListener("change", () => {
    const v = $("when").value;
    if (!v) return goLive();
    const at = new Date(v);
    if (Number.isNaN(at.getTime())) return;
    placeSlider(at);
    goPast(at);
  });
  $("now").addEventListener("click", goLive);
}

function placeSlider(at) {
  const lo = state.first ? state.first.getTime() : Date.now();
  const hi = Date.now();
  const v = hi > lo ? Math.round(((at.getTime() - lo) / (hi - lo)) * SLIDER_STEPS) : SLIDER_STEPS;
  $("slider").value = String(Math.max(0, Math.min(SLIDER_STEPS, v)));
}

async function loadFirst() {
  try {
    const h = await getJSON("/api/ports/history?limit=1");
    if (h.events && h.events.length) state.first = new Date(h.events[0].at);
  } catch (err) {
    if (err.status === 401 || err.status === 403) setReadOnly();
    // Without history the slider covers a day; the page still works.
    if (!state.first) state.first = new Date(Date.now() - 86400e3);
  }
  if (state.first) $("when").min = toLocalInput(state.first);
}

// ---- usage ------------------------------------------------------------------

async function loadUsage() {
  if (state.readOnly) {
    const t = svgEl("text", { x: 0, y: 15 });
    t.textContent = "usage needs the token";
    $("usage").setAttribute("viewBox", "0 0 800 24");
    $("usage").replaceChildren(t);
    return;
  }
  const win = $("window").value;
  let usage = [];
  try {
    usage = (await getJSON(`/api/ports/usage?since=${encodeURIComponent(win)}`)).usage || [];
  } catch (err) {
    say(`cannot read usage: ${err.message}`);
  }
  usage.sort((a, b) => b.total_hold_s - a.total_hold_s);
  usage = usage.slice(0, 30);
  const svg = $("usage");
  // The drawing's units are the screen's pixels, so its text stays
  // readable at phone width.
  const width = Math.max(300, Math.round(svg.clientWidth || 800));
  const rowH = 22, labelW = Math.min(160, Math.round(width * 0.35)), barW = width - labelW - 10;
  const max = Math.max(1e-9, ...usage.map((u) => u.total_hold_s));
  svg.setAttribute("viewBox", `0 0 ${width} ${Math.max(usage.length, 1) * rowH + 4}`);
  const frag = document.createDocumentFragment();
  usage.forEach((u, i) => {
    const y = i * rowH + 2;
    const rel = Object.entries(u.releases || {}).map(([r, n]) => `${r || "no reason"}: ${n}`).join(", ");
    const tip = `${u.service}: held ${fmtDuration(u.total_hold_s)} over ${u.holds} holds, ${u.allocations} allocations, ${u.held_at_end} held now${rel ? "; releases — " + rel : ""}`;
    const label = svgEl("text", { x: 0, y: y + 14 });
    label.textContent = u.service.length > 24 ? u.service.slice(0, 23) + "…" : u.service;
    frag.append(label);
    frag.append(svgEl("rect", { x: labelW, y, width: Math.max(1, (u.total_hold_s / max) * barW), height: rowH - 6, class: "bar", "data-service": u.service }, tip));
    const v = svgEl("text", { x: labelW + 4, y: y + 12 });
    const released = Object.values(u.releases || {}).reduce((n, k) => n + k, 0);
    v.textContent = `${fmtDuration(u.total_hold_s)} · ${u.allocations} alloc${released ? ` · ${released} released` : ""}`;
    frag.append(v);
  });
  if (!usage.length) {
    const t = svgEl("text", { x: 0, y: 15 });
    t.textContent = "no allocations in this window";
    frag.replaceChildren(t);
  }
  svg.replaceChildren(frag);
}

// ---- a port's page ----------------------------------------------------------

async function showPort(port) {
  $("home").hidden = true;
  $("portpage").hidden = false;
  $("port-no").textContent = String(port);
  let events = [];
  try {
    events = (await getJSON(`/api/ports/history?port=${port}&limit=5000`)).events || [];
  } catch (err) {
    say(`cannot read the history of port ${port}: ${err.message}`);
  }
  renderTimeline(events);
  const rows = document.createDocumentFragment();
  for (const e of [...events].reverse()) {
    rows.append(el("tr", { "data-type": e.type },
      el("td", { title: e.at }, fmtTime(e.at)), el("td", {}, e.type),
      el("td", {}, e.service_name || ""), el("td", { class: "wrap" }, eventDetail(e))));
  }
  $("port-rows").replaceChildren(rows);
  document.body.dataset.port = String(port);
}

// tenures folds a port's events into its holders, oldest first.
function tenures(events) {
  const out = [];
  let cur = null;
  for (const e of events) {
    const t = new Date(e.at).getTime();
    if (e.type === "allocated") {
      cur = { service: e.service_name, start: t, end: null, marks: [], purpose: e.purpose, by: e.started_by };
      out.push(cur);
    } else if (cur && e.type === "health_changed") {
      cur.marks.push({ t, cls: e.to, text: `${fmtTime(e.at)}: ${e.from || "?"} → ${e.to}: ${e.reason || ""}` });
    } else if (cur && e.type === "released") {
      cur.end = t;
      cur.marks.push({ t, cls: "released", text: `${fmtTime(e.at)}: released: ${e.reason || "no reason"}${e.released_by ? " (by " + e.released_by + ")" : ""}` });
      cur = null;
    }
  }
  return out;
}

function renderTimeline(events) {
  const ts = tenures(events);
  const svg = $("timeline");
  const width = Math.max(300, Math.round(svg.clientWidth || 800));
  const left = Math.min(150, Math.round(width * 0.3)), rowH = 24, top = 6;
  const now = Date.now();
  const lo = ts.length ? ts[0].start : now - 3600e3;
  const span = Math.max(1, now - lo);
  const x = (t) => left + ((t - lo) / span) * (width - left - 10);
  svg.setAttribute("viewBox", `0 0 ${width} ${Math.max(ts.length, 1) * rowH + top + 18}`);
  const frag = document.createDocumentFragment();
  ts.forEach((h, i) => {
    const y = top + i * rowH;
    const label = svgEl("text", { x: 0, y: y + 14 });
    label.textContent = h.service.length > 22 ? h.service.slice(0, 21) + "…" : h.service;
    frag.append(label);
    const end = h.end ?? now;
    const tip = `${h.service}: ${fmtTime(h.start)} – ${h.end ? fmtTime(h.end) : "now"} (${fmtDuration((end - h.start) / 1000)})${h.purpose ? " · " + h.purpose : ""}`;
    frag.append(svgEl("rect", { x: x(h.start), y, width: Math.max(2, x(end) - x(h.start)), height: rowH - 8, rx: 3,
      class: h.end ? "bar ended" : "bar", "data-service": h.service, "data-holder": i }, tip));
    for (const m of h.marks) {
      frag.append(svgEl("circle", { cx: x(m.t), cy: y + (rowH - 8) / 2, r: 5, class: `mark ${m.cls}` }, m.text));
    }
  });
  const axisY = top + Math.max(ts.length, 1) * rowH + 2;
  frag.append(svgEl("line", { x1: left, x2: width - 10, y1: axisY, y2: axisY, class: "axis" }));
  const a = svgEl("text", { x: left, y: axisY + 13 }); a.textContent = fmtTime(lo); frag.append(a);
  const b = svgEl("text", { x: width - 10, y: axisY + 13, "text-anchor": "end" }); b.textContent = "now"; frag.append(b);
  svg.replaceChildren(frag);
}

// ---- release ----------------------------------------------------------------

function askRelease(a) {
  const d = $("release-dialog");
  $("release-port").textContent = String(a.port);
  $("release-holder").textContent = `held by ${a.service_name}${a.pid ? " (pid " + a.pid + ")" : ""} since ${fmtTime(a.allocated_at)}`;
  $("release-reason").value = "";
  d.dataset.port = String(a.port);
  d.dataset.event = a.event_id || "";
  d.showModal();
  $("release-reason").focus();
}

async function doRelease(port, eventID, reason) {
  const q = new URLSearchParams({ reason, released_by: "dashboard" });
  if (eventID) q.set("event_id", eventID);
  const r = await fetch(`/api/ports/allocations/${port}?${q}`, { method: "DELETE", credentials: "same-origin" });
  if (r.ok) { say(""); scheduleRefresh(); return; }
  const body = await r.json().catch(() => ({}));
  if (r.status === 401 || r.status === 403) {
    state.canWrite = false;
    say(`release refused: ${body.error || r.statusText}. Writing needs the token: open the link that \`ledger serve\` printed.`);
  } else {
    say(`release refused: ${body.error || r.statusText}`);
  }
}

function setupRelease() {
  const d = $("release-dialog");
  $("release-cancel").addEventListener("click", () => d.close("cancel"));
  $("release-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const reason = $("release-reason").value.trim();
    if (!reason) { $("release-reason").reportValidity(); return; }
    d.close("ok");
    doRelease(d.dataset.port, d.dataset.event, reason);
  });
}

// ---- views ------------------------------------------------------------------

function route() {
  const m = /^#\/port\/(\d+)$/.exec(location.hash);
  if (m) { showPort(Number(m[1])); return; }
  $("portpage").hidden = true;
  $("home").hidden = false;
  delete document.body.dataset.port;
}

async function main() {
  setupSlider();
  setupRelease();
  setupTable();
  $("window").addEventListener("change", loadUsage);
  window.addEventListener("hashchange", route);
  route();
  await refreshLive();
  await loadFirst();
  follow();
  loadUsage();
  // The watchdog's last sweep moves without an event: read it now and then.
  setInterval(() => { if (state.live) scheduleRefresh(); }, 10000);
  document.body.dataset.ready = "true";
}

main();
