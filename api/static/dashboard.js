// Job Ledger dashboard: reads the native API with the token the user gives, kept for the
// tab only (sessionStorage). Every value from the API is written with textContent, never
// parsed as HTML. Live parts poll until the ledger has an event feed.
"use strict";

const TOKEN_KEY = "ledger.token";
const TENANT_KEY = "ledger.tenant";
const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
const params = new URLSearchParams(location.search);
const POLL_MS = Math.max(200, Number(params.get("poll_ms")) || 1000);
const STATS_EVERY = 5; // stats and failures refresh every fifth poll of the running set
const SVG = "http://www.w3.org/2000/svg";

const state = {
  jobType: "", rangeDays: "30", timer: null, ticks: 0, stats: [], busy: false, wantFull: false,
  position: 0, live: "poll", feed: null, soon: null,
};

class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

// -- the API --------------------------------------------------------------------------

function apiUrl(path, query) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const tenant = sessionStorage.getItem(TENANT_KEY);
  if (tenant) url.searchParams.set("tenant", tenant);
  return url;
}

function authorization() {
  return `Bearer ${sessionStorage.getItem(TOKEN_KEY)}`;
}

async function api(path, query) {
  const response = await fetch(apiUrl(path, query), {
    headers: { Authorization: authorization(), Accept: "application/json" },
    cache: "no-store",
    credentials: "omit",
  });
  const position = Number(response.headers.get("X-Ledger-Position"));
  if (position) {
    state.position = Math.max(state.position, position);
    showFreshness();
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new ApiError(response.status, problem.detail || response.statusText);
  }
  return response.json();
}

function since() {
  if (!state.rangeDays) return undefined;
  return new Date(Date.now() - Number(state.rangeDays) * 86400000).toISOString();
}

// -- formatting -----------------------------------------------------------------------

function when(iso) {
  if (!iso) return "–";
  const moment = new Date(iso);
  return moment.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

function jobLink(id) {
  return el("a", { href: `#job/${encodeURIComponent(id)}`, class: "job-link" }, id);
}

function status(value) {
  return el("span", { class: `status ${value}` }, value);
}

// -- statistics -----------------------------------------------------------------------

function selected(groups) {
  return groups.filter((group) => !state.jobType || group.job_type === state.jobType);
}

/** Sums groups into one: count, and durations weighted by the count of timed groups. */
function combine(groups) {
  let count = 0, timed = 0, weighted = 0, min = null, max = null;
  for (const group of groups) {
    count += group.count;
    const d = group.duration_ms || {};
    if (d.avg !== null && d.avg !== undefined) {
      timed += group.count;
      weighted += d.avg * group.count;
    }
    if (d.min !== null && d.min !== undefined) min = min === null ? d.min : Math.min(min, d.min);
    if (d.max !== null && d.max !== undefined) max = max === null ? d.max : Math.max(max, d.max);
  }
  return { count, avg: timed ? weighted / timed : null, min, max };
}

function groupBy(groups, key) {
  const found = new Map();
  for (const group of groups) {
    const value = group[key];
    if (!found.has(value)) found.set(value, []);
    found.get(value).push(group);
  }
  return found;
}

function renderCounts(groups) {
  const mine = selected(groups);
  $("count-total").textContent = combine(mine).count;
  const byStatus = groupBy(mine, "status");
  for (const name of STATUSES) {
    $(`count-${name}`).textContent = combine(byStatus.get(name) || []).count;
  }
}

function renderTypeFilter(groups) {
  const select = $("filter-type");
  const types = [...new Set(groups.map((group) => group.job_type))].sort();
  if (state.jobType && !types.includes(state.jobType)) types.push(state.jobType);
  const current = [...select.options].slice(1).map((option) => option.value);
  if (current.join("\n") === types.join("\n")) return;
  select.replaceChildren(el("option", { value: "" }, "all types"));
  for (const type of types) select.append(el("option", { value: type }, type));
  select.value = state.jobType;
}

function renderTypes(groups) {
  const rows = [];
  for (const [type, ofType] of groupBy(selected(groups), "job_type")) {
    const failed = combine(ofType.filter((group) => group.status === "failed")).count;
    const finished = ofType.filter((group) => group.status === "completed" || group.status === "failed");
    rows.push({ type, total: combine(ofType).count, failed, avg: combine(finished).avg });
  }
  rows.sort((a, b) => b.total - a.total || a.type.localeCompare(b.type));
  $("types").tBodies[0].replaceChildren(
    ...rows.map((row) =>
      el("tr", { "data-job-type": row.type },
        el("td", {}, row.type), el("td", { class: "type-total" }, row.total),
        el("td", {}, row.failed), el("td", {}, duration(row.avg))),
    ),
  );
  barChart($("chart-types"), rows.map((row) => ({
    label: row.type, value: row.total, title: `${row.type}: ${row.total} jobs, ${row.failed} failed`,
    part: row.failed,
  })), { barClass: "bar-type", partClass: "bar-type-failed", horizontal: true });
}

function days(groups) {
  const byDay = groupBy(selected(groups), "day");
  const labels = [...byDay.keys()].filter(Boolean).sort();
  if (state.rangeDays && Number(state.rangeDays) <= 31) {
    labels.length = 0;
    const today = new Date();
    for (let n = Number(state.rangeDays) - 1; n >= 0; n--) {
      labels.push(new Date(today.getTime() - n * 86400000).toISOString().slice(0, 10));
    }
  }
  return labels.map((day) => {
    const ofDay = byDay.get(day) || [];
    const finished = ofDay.filter((group) => group.status === "completed" || group.status === "failed");
    return {
      day,
      failed: combine(ofDay.filter((group) => group.status === "failed")).count,
      avg: combine(finished).avg,
    };
  });
}

function renderDays(groups) {
  const perDay = days(groups);
  barChart($("chart-failures"), perDay.map((d) => ({
    label: d.day.slice(5), value: d.failed, title: `${d.day}: ${d.failed} failed`,
  })), { barClass: "bar-failed" });
  barChart($("chart-durations"), perDay.map((d) => ({
    label: d.day.slice(5), value: d.avg || 0, title: `${d.day}: average ${duration(d.avg)}`,
  })), { barClass: "bar-duration", format: duration });
}

/** A bar chart as inline SVG; `part` draws a second bar inside each (e.g. failures). */
function barChart(node, items, options) {
  const width = node.clientWidth || 480;
  const height = options.horizontal ? Math.max(40, items.length * 28 + 8) : node.clientHeight || 180;
  if (options.horizontal) node.style.height = `${height}px`;
  node.setAttribute("viewBox", `0 0 ${width} ${height}`);
  node.replaceChildren();
  if (!items.length) {
    node.append(svg("text", { x: 8, y: 20 }, "no data"));
    return;
  }
  const format = options.format || ((value) => String(value));
  const top = Math.max(...items.map((item) => item.value), 1);
  if (options.horizontal) {
    const left = 110, row = Math.min(28, (height - 8) / items.length);
    items.forEach((item, n) => {
      const y = 4 + n * row, span = ((width - left - 50) * item.value) / top;
      const bar = svg("rect", { x: left, y, width: Math.max(span, 1), height: row - 6, class: options.barClass });
      bar.append(svg("title", {}, item.title));
      node.append(svg("text", { x: left - 6, y: y + row / 2, "text-anchor": "end" }, item.label), bar);
      if (item.part) {
        const part = ((width - left - 50) * item.part) / top;
        node.append(svg("rect", { x: left, y, width: part, height: row - 6, class: options.partClass }));
      }
      node.append(svg("text", { x: left + span + 4, y: y + row / 2 }, format(item.value)));
    });
    return;
  }
  const bottom = height - 18, slot = (width - 10) / items.length;
  node.append(svg("line", { x1: 5, x2: width - 5, y1: bottom, y2: bottom, class: "axis" }));
  items.forEach((item, n) => {
    const tall = ((bottom - 16) * item.value) / top;
    const x = 5 + n * slot + slot * 0.15;
    const bar = svg("rect", { x, y: bottom - tall, width: slot * 0.7, height: tall, class: options.barClass });
    bar.append(svg("title", {}, item.title));
    node.append(bar);
    if (item.value) {
      const middle = Math.min(Math.max(x + slot * 0.35, 24), width - 24);
      node.append(svg("text", { x: middle, y: bottom - tall - 3, "text-anchor": "middle" }, format(item.value)));
    }
    if (items.length <= 14 || n % Math.ceil(items.length / 10) === 0) {
      node.append(svg("text", { x: x + slot * 0.35, y: height - 4, "text-anchor": "middle" }, item.label));
    }
  });
}

// -- running jobs and failures --------------------------------------------------------

function progressBar(job) {
  const fill = el("div", { class: "fill" });
  fill.style.width = `${job.progress}%`;
  return el("div", {
    class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": String(job.progress), "data-job-id": job.id,
  }, fill, el("span", { class: "label" }, `${job.progress}%`));
}

function setProgress(bar, progress) {
  bar.setAttribute("aria-valuenow", String(progress));
  bar.querySelector(".fill").style.width = `${progress}%`;
  bar.querySelector(".label").textContent = `${progress}%`;
}

function renderRunning(jobs) {
  const body = $("running").tBodies[0];
  const shown = jobs.filter((job) => !state.jobType || job.job_type === state.jobType);
  const rows = new Map([...body.rows].map((row) => [row.dataset.jobId, row]));
  const ordered = shown.map((job) => {
    let row = rows.get(job.id);
    if (!row) {
      row = el("tr", { "data-job-id": job.id },
        el("td", {}, jobLink(job.id)), el("td", {}, job.job_type),
        el("td", {}, progressBar(job)), el("td", {}, when(job.start_time)));
    } else {
      // Update in place, so the bar's width transition shows the movement.
      setProgress(row.querySelector(".progress"), job.progress);
    }
    return row;
  });
  body.replaceChildren(...ordered);
  $("running-empty").hidden = shown.length > 0;
}

function renderFailures(jobs) {
  $("failures").tBodies[0].replaceChildren(...jobs.map((job) =>
    el("tr", { "data-job-id": job.id },
      el("td", {}, jobLink(job.id)), el("td", {}, job.job_type),
      el("td", { class: "error-message" }, job.error_message || "–"), el("td", {}, when(job.end_time)))));
  $("failures-empty").hidden = jobs.length > 0;
}

// -- a job's detail -------------------------------------------------------------------

const DETAIL_FIELDS = [
  "status", "job_type", "name", "tenant", "progress", "current_step", "records_processed",
  "total_records", "records_created", "records_updated", "records_deleted", "attempt",
  "max_attempts", "created_at", "start_time", "end_time", "duration_ms", "updated_at",
  "error_message", "cancel_reason", "version", "position",
];

function detailValue(job, name) {
  const value = job[name];
  if (name === "status") return status(value);
  if (name.endsWith("_at") || name.endsWith("_time")) return when(value);
  if (name === "duration_ms") return duration(value);
  if (name === "progress") return `${value}%`;
  return value === null || value === undefined || value === "" ? "–" : String(value);
}

function timelineItem(kind, title, moment, text) {
  return el("li", { class: kind }, el("strong", {}, title),
    el("time", { datetime: moment || "" }, when(moment)), text ? el("div", {}, text) : "");
}

/** The job's history from its fields, for servers without the per-job events endpoint. */
function derivedTimeline(job) {
  const items = [timelineItem("pending", "created", job.created_at)];
  for (const earlier of job.error_history || []) {
    const at = earlier.failed_at || earlier.end_time || earlier.at || null;
    items.push(timelineItem("failed", `attempt ${earlier.attempt ?? "?"} failed`, at,
      earlier.error_message || earlier.message || JSON.stringify(earlier)));
  }
  if (job.start_time) {
    items.push(timelineItem("running", job.attempt > 1 ? `started (attempt ${job.attempt})` : "started", job.start_time));
  }
  if (job.status === "running") {
    items.push(timelineItem("running", `progress ${job.progress}%`, job.updated_at, job.current_step || ""));
  }
  if (job.end_time || job.status === "cancelled") {
    const text = job.status === "failed" ? job.error_message : job.cancel_reason || "";
    items.push(timelineItem(job.status, job.status, job.end_time || job.updated_at, text));
  }
  return items;
}

function eventTimeline(events) {
  const kinds = { created: "pending", started: "running", progressed: "running", progress: "running",
    succeeded: "completed", failed: "failed", cancelled: "cancelled", deleted: "cancelled" };
  return events.map((event) => {
    const type = String(event.type || "").toLowerCase();
    const data = event.data || {};
    const text = data.error_message || data.reason || (data.progress !== undefined && data.progress !== null
      ? `${data.progress}%` : "") || data.current_step || "";
    return timelineItem(kinds[type] || "", `${type} · v${event.version}`, event.occurred_at, text);
  });
}

async function showJob(id) {
  $("job-detail").hidden = false;
  $("detail-id").textContent = id;
  $("detail-fields").replaceChildren();
  $("timeline").replaceChildren();
  let job;
  try {
    job = await api(`/api/v1/jobs/${encodeURIComponent(id)}`);
  } catch (error) {
    $("detail-fields").replaceChildren(el("dd", { class: "error" }, error.message));
    return;
  }
  $("detail-fields").replaceChildren(...DETAIL_FIELDS.flatMap((name) =>
    [el("dt", {}, name), el("dd", { "data-field": name }, detailValue(job, name))]));
  let items = null;
  try {
    const answer = await api(`/api/v1/jobs/${encodeURIComponent(id)}/events`);
    const events = Array.isArray(answer) ? answer : answer.events;
    if (Array.isArray(events)) items = eventTimeline(events);
  } catch (error) {
    items = null; // no per-job events endpoint here (or not for this role): use the fields
  }
  $("timeline-source").textContent = items ? "Every event of the job, in order."
    : "From the job's fields (this server does not list a job's events to this token).";
  $("timeline").replaceChildren(...(items || derivedTimeline(job)));
}

function route() {
  const match = location.hash.match(/^#job\/(.+)$/);
  if (match) showJob(decodeURIComponent(match[1]));
  else $("job-detail").hidden = true;
}

// -- the live event feed --------------------------------------------------------------
// Auditor and admin tokens may read GET /api/v1/events as Server-Sent Events. It is read
// with fetch (EventSource cannot send an Authorization header). While it flows, progress
// events move the bars at once and other events refresh what they change; polling slows
// down to a safety net. Other tokens, or a server without the feed, keep polling.

function showFreshness() {
  const how = state.live === "feed" ? "live feed" : `polling every ${POLL_MS / 1000} s`;
  $("freshness").textContent = `${how} · log position ${state.position}`;
  document.body.dataset.live = state.live;
}

function refreshSoon(full) {
  state.wantFull ||= full;
  clearTimeout(state.soon);
  state.soon = setTimeout(() => refresh(false), 150);
}

function onFeedEvent(event) {
  state.position = Math.max(state.position, event.position);
  const data = event.data || {};
  const bar = document.querySelector(`#running .progress[data-job-id="${CSS.escape(event.job_id)}"]`);
  if (event.type === "progress" && bar) {
    if (data.progress !== null && data.progress !== undefined) setProgress(bar, data.progress);
  } else {
    refreshSoon(event.type !== "progress");
  }
  showFreshness();
}

function onFeedBlock(block) {
  const data = block.split("\n").filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).trimStart()).join("\n");
  if (!data) return; // a heartbeat
  try {
    onFeedEvent(JSON.parse(data));
  } catch (error) {
    $("board-error").textContent = `Unreadable feed event: ${error.message}`;
  }
}

async function followFeed() {
  const controller = new AbortController();
  state.feed = controller;
  let response = null;
  try {
    response = await fetch(apiUrl("/api/v1/events", { after: state.position }), {
      headers: { Authorization: authorization(), Accept: "text/event-stream" },
      cache: "no-store", credentials: "omit", signal: controller.signal,
    });
  } catch (error) {
    response = null;
  }
  if (!response || !response.ok || !response.body) {
    // 403: this token may not read the feed; 404: a server without it. Keep polling.
    state.live = "poll";
    showFreshness();
    return;
  }
  state.live = "feed";
  showFreshness();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const chunk = await reader.read().catch(() => ({ done: true }));
    if (chunk.done) break;
    buffer += chunk.value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      onFeedBlock(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
  state.live = "poll";
  showFreshness();
  if (!controller.signal.aborted) setTimeout(followFeed, 3000); // resumes after `position`
}

function stopFeed() {
  if (state.feed) state.feed.abort();
  state.feed = null;
  state.live = "poll";
}

// -- the loop -------------------------------------------------------------------------

async function refresh(full) {
  if (state.busy) {
    state.wantFull ||= full;
    return;
  }
  full ||= state.wantFull;
  state.wantFull = false;
  state.busy = true;
  try {
    const tasks = [api("/api/v1/jobs/running").then((answer) => renderRunning(answer.jobs))];
    if (full) {
      tasks.push(api("/api/v1/stats", { group_by: "status,job_type,day", start_date: since() })
        .then((answer) => {
          state.stats = answer.groups;
          renderTypeFilter(state.stats);
          renderCounts(state.stats);
          renderTypes(state.stats);
          renderDays(state.stats);
        }));
      tasks.push(api("/api/v1/jobs", {
        status: "failed", first: 10, job_type: state.jobType, start_date: since(),
      }).then((answer) => renderFailures(answer.jobs)));
    }
    await Promise.all(tasks);
    $("board-error").textContent = "";
    document.body.dataset.loaded = "true";
  } catch (error) {
    if (error.status === 401) signOut("That token was not accepted; give another.");
    else $("board-error").textContent = `Could not refresh: ${error.message}`;
  } finally {
    state.busy = false;
  }
}

function tick() {
  const full = state.ticks % STATS_EVERY === 0;
  state.ticks += 1;
  if (state.live === "feed" && !full) return; // the feed brings what changes
  refresh(full);
}

function start() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("forget-token").hidden = false;
  state.ticks = 0;
  clearInterval(state.timer);
  stopFeed();
  refresh(true).then(() => {
    if (sessionStorage.getItem(TOKEN_KEY)) followFeed();
  });
  state.ticks = 1;
  state.timer = setInterval(tick, POLL_MS);
  route();
}

function signOut(message) {
  clearInterval(state.timer);
  stopFeed();
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(TENANT_KEY);
  delete document.body.dataset.loaded;
  $("board").hidden = true;
  $("forget-token").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    const tenant = $("tenant-input").value.trim();
    if (tenant) sessionStorage.setItem(TENANT_KEY, tenant);
    else sessionStorage.removeItem(TENANT_KEY);
    $("token-input").value = "";
    $("login-error").textContent = "";
    start();
  });
  $("forget-token").addEventListener("click", () => signOut(""));
  $("filter-type").addEventListener("change", (event) => {
    state.jobType = event.target.value;
    state.ticks = 0;
    if (state.stats.length) {
      renderCounts(state.stats);
      renderTypes(state.stats);
      renderDays(state.stats);
    }
    tick();
  });
  $("filter-range").addEventListener("change", (event) => {
    state.rangeDays = event.target.value;
    state.ticks = 0;
    tick();
  });
  window.addEventListener("hashchange", route);
  if (sessionStorage.getItem(TOKEN_KEY)) start();
});
