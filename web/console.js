// The console: reads the REST API with the token (from the link `lepton up` prints, #token=...,
// or typed in), renders with render.js, refreshes every 2 s. Views: #/ (everything) and
// #/jobs/ID (one job with its tasks and log).
import * as render from "./render.js";

const REFRESH_MS = 2000;
const LOG_MAX_CHARS = 200_000;
const $ = (id) => document.getElementById(id);

let token = localStorage.getItem("lepton-token") ?? "";
let timer = null;
let logs = { job: "", offset: 0, text: "" };  // the log shown in the job view, read on from offset

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

async function overview() {
  const [nodes, jobs, deployments, instances, queues, cost] = await Promise.all([
    api("nodes"), api("jobs"), api("deployments"), api("instances"), api("queues"), api("cost?by=job"),
  ]);
  const now = Date.now();
  $("summary").innerHTML = render.summary({ nodes, jobs, deployments, instances, cost });
  $("nodes").innerHTML = render.nodes(nodes);
  $("jobs").innerHTML = render.jobs(jobs, now);
  $("deployments").innerHTML = render.deployments(deployments);
  $("instances").innerHTML = render.instances(instances, now);
  $("queues").innerHTML = render.queues(queues);
  show("overview");
}

async function jobView(id) {
  if (logs.job !== id) logs = { job: id, offset: 0, text: "" };
  const j = await api(`jobs/${encodeURIComponent(id)}`);
  // Read on from where the last refresh stopped, a bounded amount each time.
  for (let i = 0; i < 8; i++) {
    const chunk = await api(`jobs/${encodeURIComponent(id)}/logs?rank=0&offset=${logs.offset}&max_bytes=262144`)
      .catch((e) => (e.status === 404 ? null : Promise.reject(e)));
    if (!chunk || !chunk.data) break;
    logs.text = (logs.text + chunk.data).slice(-LOG_MAX_CHARS);
    logs.offset = chunk.next_offset;
  }
  $("job-view").innerHTML = render.job(j, logs.text, Date.now());
  show("job-view");
}

async function refresh() {
  clearTimeout(timer);
  if (!token) {
    show("login");
    status("");
    return;
  }
  const m = location.hash.match(/^#\/jobs\/(.+)$/);
  try {
    if (m) await jobView(decodeURIComponent(m[1]));
    else await overview();
    status(`updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
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
