// The console: reads the REST API with the token (from the link `lepton up` prints, #token=...,
// or typed in), renders with render.js, refreshes every 2 s. Views: #/ (everything) and
// #/jobs/ID (one job with its tasks and log).
import * as render from "./render.js";

const REFRESH_MS = 2000;
const LOG_MAX_CHARS = 200_000;
const $ = (id) => document.getElementById(id);

let token = localStorage.getItem("lepton-token") ?? "";
let timer = null;
// Each refresh has a number; one that a newer refresh overtook (a click, a hash change, a login
// while it waited on the API) changes nothing when its answers come.
let generation = 0;
// The log shown in the job view: of this job and attempt, read on from offset.
let logs = { job: "", attempt: -1, offset: 0, text: "" };

function takeTokenFromLink() {
  const m = location.hash.match(/^#token=([^&]+)/);
  if (!m) return;
  token = decodeURIComponent(m[1]);
  localStorage.setItem("lepton-token", token);
  history.replaceState(null, "", location.pathname + "#/");
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const response = await fetch(`/api/v1/${path}`, {
    ...options,
    headers: { Authorization: `Bearer ${token}`, ...(options.headers ?? {}) },
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body?.error?.message ?? `${response.status} ${response.statusText}`);
  }
  return body;
}

function show(section) {
  for (const id of ["login", "overview", "job-view"]) $(id).hidden = id !== section;
}

function status(text, bad = false) {
  $("status").textContent = text;
  $("status").className = bad ? "bad" : "";
}

async function overview(current) {
  const [nodes, jobs, deployments, instances, queues, cost] = await Promise.all([
    api("nodes"), api("jobs?order=newest&limit=1000"), api("deployments"), api("instances"), api("queues"), api("cost?by=job"),
  ]);
  if (!current()) return;
  const now = Date.now();
  $("summary").innerHTML = render.summary({ nodes, jobs, deployments, instances, cost });
  $("nodes").innerHTML = render.nodes(nodes);
  $("jobs").innerHTML = render.jobs(jobs, now);
  $("deployments").innerHTML = render.deployments(deployments);
  $("instances").innerHTML = render.instances(instances, now);
  $("queues").innerHTML = render.queues(queues);
  show("overview");
}

async function jobView(id, current) {
  const j = await api(`jobs/${encodeURIComponent(id)}`);
  if (!current()) return;
  if (logs.job !== id) logs = { job: id, attempt: -1, offset: 0, text: "" };
  // Read on from where the last refresh stopped, a bounded amount each time; a new attempt (the
  // task restarted) has a log of its own, read from its start.
  for (let i = 0; i < 8; i++) {
    const chunk = await api(`jobs/${encodeURIComponent(id)}/logs?rank=0&offset=${logs.offset}&max_bytes=262144`)
      .catch((e) => (e.status === 404 ? null : Promise.reject(e)));
    if (!current()) return;
    if (!chunk) break;
    if (chunk.attempt !== logs.attempt) {
      const restarted = logs.attempt >= 0;
      logs = { job: id, attempt: chunk.attempt, offset: 0, text: "" };
      if (restarted) continue;  // read the new attempt's log from its start
    }
    if (!chunk.data) break;
    logs.text = (logs.text + chunk.data).slice(-LOG_MAX_CHARS);
    logs.offset = chunk.next_offset;
  }
  // Redrawn whole; the log box keeps its place, or follows the end when it was there.
  const box = document.querySelector("#job-view pre.log");
  const atEnd = !box || box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  const scrollTop = box?.scrollTop ?? 0;
  $("job-view").innerHTML = render.job(j, logs.text, Date.now());
  const fresh = document.querySelector("#job-view pre.log");
  if (fresh) fresh.scrollTop = atEnd ? fresh.scrollHeight : scrollTop;
  show("job-view");
}

async function refresh() {
  clearTimeout(timer);
  const mine = ++generation;
  const current = () => mine === generation;
  if (!token) {
    show("login");
    status("");
    return;
  }
  const m = location.hash.match(/^#\/jobs\/(.+)$/);
  try {
    if (m) await jobView(decodeURIComponent(m[1]), current);
    else await overview(current);
    if (!current()) return;
    status(`updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    if (!current()) return;
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      localStorage.removeItem("lepton-token");
      token = "";
      show("login");
      $("login-error").textContent = `The server refused the token: ${e.message}`;
      return;
    }
    status(e instanceof ApiError ? e.message : `cannot reach the server (${e.message}); retrying`, true);
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  localStorage.setItem("lepton-token", token);
  $("login-error").textContent = "";
  refresh();
});

$("forget").addEventListener("click", () => {
  localStorage.removeItem("lepton-token");
  token = "";
  refresh();
});

document.addEventListener("click", async (event) => {
  const id = event.target?.dataset?.cancel;
  if (!id || !confirm(`Cancel job ${id}?`)) return;
  try {
    await api(`jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  } catch (e) {
    status(`cancel ${id}: ${e.message}`, true);
  }
  refresh();
});

window.addEventListener("hashchange", () => {
  takeTokenFromLink();
  refresh();
});

takeTokenFromLink();
refresh();
