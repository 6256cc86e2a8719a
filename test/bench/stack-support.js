// Helpers shared by the benchmarks that drive a local stack (test/bench/run.js, test/bench/stack/run.js).
'use strict';
const { readFileSync } = require('node:fs');
const { performance } = require('node:perf_hooks');

/** Submits a task through the REST API and waits for its end; the milliseconds from submit to task.succeeded. */
async function submitAndWait(stack, body) {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${stack.adminToken}` };
  const t0 = performance.now();
  const res = await fetch(`${stack.gatewayUrl}/v1/tasks`, { method: 'POST', headers, body: JSON.stringify(body) });
  if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  const { id } = await res.json();
  // The event stream closes right after the task's terminal event.
  const events = await (await fetch(`${stack.gatewayUrl}/v1/tasks/${id}/events`, { headers })).text();
  const ms = performance.now() - t0;
  if (!events.includes('event: task.succeeded')) throw new Error(`task ${id} did not succeed:\n${events.slice(-500)}`);
  return ms;
}

/** Direct children of a process, from /proc. */
function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

module.exports = { submitAndWait, childrenOf };
