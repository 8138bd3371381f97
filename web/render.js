// The console's views as pure functions of the API's JSON: each returns an HTML string, with every
// value from the API escaped. No DOM, no fetch, so `npm test` (node --test) checks them as they are.

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

// Plain text, as span() and ago() are: escape it where it goes into HTML.
export function money(usd) {
  if (usd == null || !Number.isFinite(usd)) return "-";
  return usd >= 0 && usd < 0.005 && usd !== 0 ? "<$0.01" : `$${usd.toFixed(2)}`;
}

// "42 s", "3 min", "2.5 h", "3.1 d" for a span in milliseconds.
export function span(ms) {
  if (ms == null || !Number.isFinite(ms) || ms < 0) return "-";
  const s = ms / 1000;
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

export function ago(ms, now) {
  return ms ? `${span(now - ms)} ago` : "-";
}

// Job and task states (core/job.cpp) by how they look.
const stateClass = {
  PENDING: "wait", SCHEDULED: "wait", STARTING: "wait", RUNNING: "ok", SUCCEEDED: "ok",
  FAILED: "bad", CANCELLED: "off",
};

export function state(s) {
  const kind = Object.hasOwn(stateClass, s) ? stateClass[s] : "";
  return `<span class="state ${kind}">${esc(s)}</span>`;
}

// Only http(s) addresses become links; anything else is shown as text.
export function link(url) {
  const text = esc(url);
  return /^https?:\/\//i.test(String(url ?? "")) ? `<a href="${text}">${text}</a>` : text || "-";
}

// columns: [[title, row => html]]; rows: array. `empty` is shown when there are no rows.
export function table(columns, rows, empty) {
  if (!rows.length) return `<p class="empty">${esc(empty)}</p>`;
  const head = columns.map(([title]) => `<th>${esc(title)}</th>`).join("");
  const body = rows.map((r) => `<tr>${columns.map(([, cell]) => `<td>${cell(r)}</td>`).join("")}</tr>`);
  return `<table><thead><tr>${head}</tr></thead><tbody>${body.join("")}</tbody></table>`;
}

function gpus(n) {
  if (!n.gpu_count) return "-";
  const used = n.gpu_count - n.gpu_free_milli / 1000;
  return `${esc(+used.toFixed(2))}/${esc(n.gpu_count)} ${esc(n.gpu_model)}`;
}

export function nodes(list) {
  return table([
    ["name", (n) => esc(n.name)],
    ["ready", (n) => (n.ready ? "yes" : `<span class="state bad">no</span>`)],
    ["GPUs used", gpus],
    ["CPUs used", (n) => `${esc(+((n.cpu_milli - n.cpu_free_milli) / 1000).toFixed(1))}/${esc(n.cpu_milli / 1000)}`],
    ["memory used", (n) => `${esc(Math.round((n.memory_mib - n.memory_free_mib) / 1024))}/${esc(Math.round(n.memory_mib / 1024))} GiB`],
    ["address", (n) => esc(n.address)],
    ["last seen", (n) => `${span(n.last_seen_ms_ago)} ago`],
  ], list, "No nodes yet: start an agent (lepton agent --server URL) or rent from a cloud.");
}

export function jobs(list, now) {
  const sorted = [...list].sort((a, b) => b.created_ms - a.created_ms);
  return table([
    ["id", (j) => `<a href="#/jobs/${encodeURIComponent(j.id)}">${esc(j.id)}</a>`],
    ["name", (j) => esc(j.name)],
    ["state", (j) => state(j.state)],
    ["restarts", (j) => esc(j.restarts)],
    ["created", (j) => ago(j.created_ms, now)],
    ["reason", (j) => esc(j.reason)],
  ], sorted, "No jobs yet: lepton job run -f examples/hello.yaml");
}

const terminal = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

// "accelerators H100:8, cpus 16, memory 64 GiB" from a spec's resources.
export function resources(res) {
  const parts = Object.entries(res ?? {}).map(([k, v]) => (k === "memory" ? `memory ${v} GiB` : `${k} ${v}`));
  return parts.join(", ") || "-";
}

// One job: its fields, tasks and the log of rank 0 (`log`: text, or null while loading).
export function job(j, log, now) {
  const tasks = table([
    ["rank", (t) => esc(t.rank)],
    ["attempt", (t) => esc(t.attempt)],
    ["state", (t) => state(t.state)],
    ["node", (t) => esc(t.node)],
    ["GPUs", (t) => esc((t.gpus ?? []).join(","))],
    ["exit", (t) => (t.exit_code >= 0 ? esc(t.exit_code) : "")],  // -1: not ended
    ["reason", (t) => esc(t.reason)],
  ], j.tasks ?? [], "No task placed yet.");
  const cancel = terminal.has(j.state) ? ""
    : `<button class="danger" data-cancel="${esc(j.id)}">Cancel job</button>`;
  const res = j.spec?.resources ?? {};
  return `<h2>Job ${esc(j.id)} <small>${esc(j.name)}</small> ${state(j.state)}</h2>
<dl>
<dt>queue</dt><dd>${esc(j.queue)}</dd>
<dt>resources</dt><dd>${esc(resources(res))}</dd>
<dt>nodes</dt><dd>${esc(j.spec?.num_nodes ?? 1)}${j.spec?.use_spot ? " (spot)" : ""}</dd>
<dt>created</dt><dd>${ago(j.created_ms, now)}</dd>
<dt>restarts</dt><dd>${esc(j.restarts)}</dd>
${j.deployment ? `<dt>deployment</dt><dd>${esc(j.deployment)}</dd>` : ""}
${j.reason ? `<dt>reason</dt><dd>${esc(j.reason)}</dd>` : ""}
</dl>
${cancel}
<h3>Tasks</h3>${tasks}
<h3>Log (rank 0)</h3><pre class="log">${log == null ? "loading..." : esc(log) || "(empty)"}</pre>`;
}

export function deployments(list) {
  return table([
    ["name", (d) => esc(d.name)],
    ["ready", (d) => `${esc(d.ready_replicas)}/${esc(d.desired_replicas)}`],
    ["replicas (min-max)", (d) => `${esc(d.spec?.replicas?.min)}-${esc(d.spec?.replicas?.max)}`],
    ["in flight", (d) => esc(d.in_flight) + (d.panic ? ` <span class="state wait">panic</span>` : "")],
    ["req/s", (d) => esc((d.rps ?? 0).toFixed(1))],
    ["p50 / p99", (d) => (d.latency?.p50_ms == null ? "-"
      : `${esc(d.latency.p50_ms)} / ${esc(d.latency.p99_ms ?? "-")} ms`)],
    ["URL", (d) => link(d.url)],
    ["replica nodes", (d) => esc((d.replicas ?? []).map((r) => `${r.job}@${r.node || "?"}${r.ready ? "" : " (not ready)"}`).join(", "))],
  ], list, "No deployments: lepton deploy create -f examples/chat-deployment.yaml");
}

export function instances(list, now) {
  const live = list.filter((i) => !i.ended_ms);
  return table([
    ["id", (i) => esc(i.id)],
    ["cloud", (i) => esc(i.cloud)],
    ["region / zone", (i) => esc([i.region, i.zone].filter(Boolean).join(" / "))],
    ["type", (i) => esc(i.instance_type)],
    ["GPUs", (i) => (i.gpus ? `${esc(i.gpus)} ${esc(i.gpu_model)}` : "-")],
    ["price", (i) => esc(`${money(i.price_per_hour)}/h${i.spot ? " spot" : ""}`)],
    ["state", (i) => esc(i.state)],
    ["for job", (i) => (i.for_job ? `<a href="#/jobs/${encodeURIComponent(i.for_job)}">${esc(i.for_job)}</a>` : "-")],
    ["up", (i) => span(now - i.launched_ms)],
    ["cost", (i) => esc(money(i.cost_usd))],
  ], live, "No rented machines.");
}

// "2 GPUs, 8 CPUs"; "-" when there is none to show (an unlimited fair share is {}).
function share(r) {
  if (!r || (r.gpus == null && r.cpus == null)) return "-";
  return `${esc(+(r.gpus ?? 0).toFixed(2))} GPUs, ${esc(+(r.cpus ?? 0).toFixed(1))} CPUs`;
}

export function queues(list) {
  return table([
    ["name", (q) => esc(q.parent ? `${q.parent}/${q.name}` : q.name)],
    ["weight", (q) => esc(q.weight)],
    ["running / pending jobs", (q) => `${esc(q.jobs_running)} / ${esc(q.jobs_pending)}`],
    ["in use", (q) => share(q.in_use)],
    ["fair share", (q) => share(q.fair_share)],
    ["guaranteed", (q) => share(q.guaranteed)],
    ["spent", (q) => esc(money(q.spent_usd) + (q.budget_usd == null ? "" : ` of ${money(q.budget_usd)}`))],
  ], list, "No queues.");
}

// The top line: GPUs in use, jobs by state, deployments ready, machines rented and spend.
export function summary({ nodes: ns, jobs: js, deployments: ds, instances: is, cost }) {
  const gpuTotal = ns.reduce((s, n) => s + (n.gpu_count || 0), 0);
  const gpuUsed = ns.reduce((s, n) => s + (n.gpu_count || 0) - (n.gpu_free_milli || 0) / 1000, 0);
  const count = (...states) => js.filter((j) => states.includes(j.state)).length;
  const cards = [
    ["nodes", `${ns.filter((n) => n.ready).length}/${ns.length} ready`],
    ["GPUs in use", `${+gpuUsed.toFixed(2)}/${gpuTotal}`],
    ["jobs", `${count("RUNNING")} running, ${count("SCHEDULED", "STARTING")} starting, ${count("PENDING")} pending`],
    ["deployments", `${ds.filter((d) => d.ready_replicas > 0).length}/${ds.length} serving`],
    ["rented machines", `${is.filter((i) => !i.ended_ms).length}`],
    ["spent", money(cost?.total_usd)],
  ];
  return cards.map(([k, v]) => `<div class="card"><div class="k">${esc(k)}</div><div class="v">${esc(v)}</div></div>`).join("");
}
