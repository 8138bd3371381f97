// Unit tests of the console's views (npm test, or node --test web/).
import assert from "node:assert/strict";
import test from "node:test";
import * as render from "./render.js";

test("values from the API are escaped", () => {
  const html = render.jobs([{ id: "j-1", name: "<script>alert(1)</script>", state: "RUNNING",
    restarts: 0, created_ms: 0, reason: "a & b \"quoted\"" }], 1000);
  assert.ok(!html.includes("<script>"));
  assert.ok(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
  assert.ok(html.includes("a &amp; b &quot;quoted&quot;"));
  assert.equal(render.esc(`'"<>&`), "&#39;&quot;&lt;&gt;&amp;");
  assert.equal(render.esc(null), "");
});

test("jobs are newest first and link to their view", () => {
  const html = render.jobs([
    { id: "j-1", name: "old", state: "SUCCEEDED", restarts: 0, created_ms: 1000, reason: "" },
    { id: "j-2", name: "new", state: "PENDING", restarts: 1, created_ms: 5000, reason: "waiting" },
  ], 65_000);
  assert.ok(html.indexOf("j-2") < html.indexOf("j-1"));
  assert.ok(html.includes('href="#/jobs/j-2"'));
  assert.ok(html.includes('class="state wait">PENDING'));
  assert.ok(html.includes("1 min ago"));
});

test("an empty list says what to do", () => {
  assert.match(render.jobs([], 0), /No jobs yet: lepton job run/);
  assert.match(render.nodes([]), /No nodes yet/);
});

test("nodes show GPUs in use, fractions included", () => {
  const html = render.nodes([{ name: "gpu-1", ready: true, gpu_count: 8, gpu_free_milli: 5500,
    gpu_model: "H100", cpu_milli: 16000, cpu_free_milli: 4000, memory_mib: 65536,
    memory_free_mib: 32768, address: "10.0.0.5", last_seen_ms_ago: 300 }]);
  assert.ok(html.includes("2.5/8 H100"));
  assert.ok(html.includes("12/16"));
  assert.ok(html.includes("32/64 GiB"));
});

test("the summary counts GPUs, jobs, deployments, machines and spend", () => {
  const html = render.summary({
    nodes: [{ ready: true, gpu_count: 4, gpu_free_milli: 1000 }, { ready: false, gpu_count: 0, gpu_free_milli: 0 }],
    jobs: [{ state: "RUNNING" }, { state: "RUNNING" }, { state: "SCHEDULED" }, { state: "PENDING" },
      { state: "FAILED" }],
    deployments: [{ ready_replicas: 2 }, { ready_replicas: 0 }],
    instances: [{ ended_ms: 0 }, { ended_ms: 5 }],
    cost: { total_usd: 12.345 },
  });
  for (const text of ["1/2 ready", "3/4", "2 running, 1 starting, 1 pending", "1/2 serving", ">1<", "$12.35"]) {
    assert.ok(html.includes(text), `${text} in ${html}`);
  }
});

test("deployments show readiness, load and latency", () => {
  const html = render.deployments([{ name: "chat", ready_replicas: 1, desired_replicas: 2,
    spec: { replicas: { min: 0, max: 4 } }, in_flight: 3, panic: true, rps: 12.34,
    latency: { p50_ms: 25.6, p99_ms: 325.1 }, url: "http://127.0.0.1:8081/d/chat/",
    replicas: [{ job: "j-1", node: "vm", ready: true }, { job: "j-2", node: "", ready: false }] }]);
  for (const text of ["1/2", "0-4", "panic", "12.3", "25.6 / 325.1 ms", "j-1@vm, j-2@? (not ready)"]) {
    assert.ok(html.includes(text), text);
  }
  assert.ok(render.deployments([{ name: "x", latency: {}, replicas: [] }]).includes("<td>-</td>"));
});

test("a job shows its tasks, its log and a cancel button only while it can be cancelled", () => {
  const j = { id: "j-7", name: "train", state: "RUNNING", queue: "default", restarts: 0,
    created_ms: 0, deployment: "", reason: "", spec: { resources: { accelerators: "H100:8" }, num_nodes: 2 },
    tasks: [{ rank: 0, attempt: 0, state: "RUNNING", node: "gpu-1", gpus: [0, 1], reason: "" }] };
  const html = render.job(j, "step 1\n<b>", 10_000);
  assert.ok(html.includes('data-cancel="j-7"'));
  assert.ok(html.includes("accelerators H100:8"));
  assert.ok(html.includes("<td>0,1</td>"));
  assert.ok(html.includes("step 1\n&lt;b&gt;"));
  assert.ok(!render.job({ ...j, state: "SUCCEEDED" }, "", 0).includes("data-cancel"));
  assert.ok(render.job(j, null, 0).includes("loading..."));
  assert.ok(render.job(j, "", 0).includes("(empty)"));
});

test("rented machines: only live ones, with price and cost", () => {
  const html = render.instances([
    { id: "sim-aws-1", cloud: "aws", region: "us-east-1", zone: "us-east-1a", instance_type: "p5.48xlarge",
      gpus: 8, gpu_model: "H100", price_per_hour: 31.464, spot: true, state: "running", for_job: "j-3",
      launched_ms: 0, ended_ms: 0, cost_usd: 0.004 },
    { id: "sim-aws-2", ended_ms: 10, launched_ms: 0 },
  ], 90_000);
  assert.ok(html.includes("sim-aws-1") && !html.includes("sim-aws-2"));
  assert.ok(html.includes("$31.46/h spot"));
  assert.ok(html.includes("&lt;$0.01"));
  assert.ok(html.includes("2 min"));
});

test("spans and money read naturally", () => {
  assert.equal(render.span(42_000), "42 s");
  assert.equal(render.span(5_400_000), "1.5 h");
  assert.equal(render.span(-1), "-");
  assert.equal(render.money(0), "$0.00");
  assert.equal(render.money(undefined), "-");
});

// Every string field of every view set to markup that would run or break out of an attribute.
test("hostile values stay text in every view, attributes included", () => {
  const bad = `<img src=x onerror=alert(1)>" onmouseover="alert(2)' x='`;
  const job = { id: bad, name: bad, state: bad, restarts: bad, created_ms: 0, reason: bad, queue: bad,
    deployment: bad, spec: { resources: { [bad]: bad }, num_nodes: bad },
    tasks: [{ rank: bad, attempt: bad, state: bad, node: bad, gpus: [bad], exit_code: 1, reason: bad }] };
  const views = {
    jobs: render.jobs([job], 0),
    job: render.job(job, bad, 0),
    nodes: render.nodes([{ name: bad, ready: true, gpu_count: 1, gpu_free_milli: 0, gpu_model: bad,
      cpu_milli: 1000, cpu_free_milli: 0, memory_mib: 1024, memory_free_mib: 0, address: bad,
      last_seen_ms_ago: 1 }]),
    deployments: render.deployments([{ name: bad, ready_replicas: bad, desired_replicas: bad,
      spec: { replicas: { min: bad, max: bad } }, in_flight: bad, rps: 1, latency: { p50_ms: bad, p99_ms: bad },
      url: bad, replicas: [{ job: bad, node: bad, ready: false }] }]),
    instances: render.instances([{ id: bad, cloud: bad, region: bad, zone: bad, instance_type: bad,
      gpus: 1, gpu_model: bad, price_per_hour: 1, state: bad, for_job: bad, launched_ms: 0, ended_ms: 0,
      cost_usd: 1 }], 0),
    queues: render.queues([{ name: bad, parent: bad, weight: bad, jobs_running: bad, jobs_pending: bad,
      in_use: { gpus: 1 }, fair_share: {}, guaranteed: { gpus: 1 }, spent_usd: 1, budget_usd: null }]),
  };
  for (const [name, html] of Object.entries(views)) {
    assert.ok(!html.includes("<img"), `${name}: ${html}`);
    assert.ok(!html.includes(`" onmouseover`), `${name}: ${html}`);
    assert.ok(!html.includes(`' x='`), `${name}: ${html}`);
    assert.ok(html.includes("&lt;img src=x onerror=alert(1)&gt;&quot; onmouseover=&quot;alert(2)&#39; x=&#39;"),
      `${name}: ${html}`);
  }
});

test("only http(s) addresses become links", () => {
  assert.equal(render.link("http://127.0.0.1:8081/d/chat/"),
    '<a href="http://127.0.0.1:8081/d/chat/">http://127.0.0.1:8081/d/chat/</a>');
  assert.equal(render.link("javascript:alert(1)"), "javascript:alert(1)");
  assert.equal(render.link(""), "-");
});

test("details: exit codes only once known, memory in GiB, unlimited shares, unknown states", () => {
  const j = { id: "j-1", name: "x", state: "RUNNING", queue: "q", restarts: 0, created_ms: 0,
    spec: { resources: { cpus: 2, memory: 16 } },
    tasks: [{ rank: 0, attempt: 0, state: "RUNNING", node: "n", gpus: [], exit_code: -1, reason: "" },
      { rank: 1, attempt: 0, state: "FAILED", node: "n", gpus: [], exit_code: 3, reason: "" }] };
  const html = render.job(j, "", 0);
  assert.ok(!html.includes("<td>-1</td>"));
  assert.ok(html.includes("<td>3</td>"));
  assert.ok(html.includes("cpus 2, memory 16 GiB"));
  const q = render.queues([{ name: "q", weight: 1, jobs_running: 0, jobs_pending: 0, in_use: { gpus: 0, cpus: 0 },
    fair_share: {}, guaranteed: { gpus: 2, cpus: 8 }, spent_usd: 0, budget_usd: 5 }]);
  assert.ok(q.includes("<td>-</td>") && q.includes("2 GPUs, 8 CPUs") && q.includes("$0.00 of $5.00"));
  assert.equal(render.state("constructor"), '<span class="state ">constructor</span>');
  assert.equal(render.state("SCHEDULED"), '<span class="state wait">SCHEDULED</span>');
});
