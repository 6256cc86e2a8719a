// Helpers for the benchmarks that drive a local stack (test/bench/stack/run.js).
'use strict';
const { readFileSync } = require('node:fs');
const { performance } = require('node:perf_hooks');

/** Submits a task through the REST API and follows its events to its end: its id, the milliseconds from submit to the end, and whether it succeeded. */
async function submitAndFinish(stack, body) {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${stack.adminToken}` };
  const t0 = performance.now();
  const res = await fetch(`${stack.gatewayUrl}/v1/tasks`, { method: 'POST', headers, body: JSON.stringify(body) });
  if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  const { id } = await res.json();
  // The event stream closes right after the task's terminal event.
  const events = await (await fetch(`${stack.gatewayUrl}/v1/tasks/${id}/events`, { headers })).text();
  return { id, ms: performance.now() - t0, succeeded: events.includes('event: task.succeeded'), events };
}

/** Submits a task and waits for its end; the milliseconds from submit to task.succeeded (throws if it did not succeed). */
async function submitAndWait(stack, body) {
  const { id, ms, succeeded, events } = await submitAndFinish(stack, body);
  if (!succeeded) throw new Error(`task ${id} did not succeed:\n${events.slice(-500)}`);
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

module.exports = { submitAndFinish, submitAndWait, childrenOf };
