'use strict';
// `helm test`: every service answers /readyz, then one small task runs through the gateway's REST
// API (POST /v1/tasks with an approval step, approve it, poll until it succeeded), optionally
// followed by one tool step through agent-runtime and mcp-gateway. Node built-ins only, so it
// runs in any service image.
const { createHmac } = require('node:crypto');

const env = process.env;
const services = JSON.parse(env.ZIGGIE_SERVICES);
const gatewayUrl = env.ZIGGIE_GATEWAY_URL;
const deadline = Date.now() + Number(env.ZIGGIE_TEST_TIMEOUT_SECONDS || '180') * 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function log(message) {
  process.stdout.write(`${new Date().toISOString()} ${message}\n`);
}

function b64url(value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** A short-lived admin token signed with the release's HMAC secret, when no token was given. */
function token() {
  if (env.ZIGGIE_TEST_TOKEN) return env.ZIGGIE_TEST_TOKEN.trim();
  if (!env.ZIGGIE_JWT_SECRET) throw new Error('no token: set tests.token or tests.existingSecret (the release verifies asymmetric tokens only)');
  const now = Math.floor(Date.now() / 1000);
  const header = b64url({ alg: 'HS256', typ: 'JWT' });
  const payload = b64url({ sub: 'helm-test', roles: ['admin'], workspaces: ['*'], iss: env.JWT_ISSUER, aud: env.JWT_AUDIENCE, iat: now, exp: now + 600 });
  const signature = createHmac('sha256', env.ZIGGIE_JWT_SECRET).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

async function until(what, check) {
  let last = '';
  while (Date.now() < deadline) {
    try {
      const done = await check();
      if (done) return done;
      last = 'not yet';
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(2000);
  }
  throw new Error(`${what}: gave up (last: ${last})`);
}

async function api(method, path, bearer, body) {
  const res = await fetch(`${gatewayUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

function stepOf(task, id) {
  for (const wave of task.waves || []) for (const step of wave.steps || []) if (step.id === id) return step;
  return undefined;
}

async function main() {
  for (const svc of services) {
    await until(`${svc.name} /readyz`, async () => {
      const res = await fetch(`${svc.url}/readyz`, { signal: AbortSignal.timeout(5000) });
      if (res.status !== 200) throw new Error(`${res.status} ${(await res.text()).slice(0, 300)}`);
      return true;
    });
    log(`ok   ${svc.name} is ready`);
  }

  const bearer = token();
  const steps = [{ id: 'gate', capability: env.ZIGGIE_TEST_CAPABILITY, action: 'approval' }];
  if (env.ZIGGIE_TEST_TOOL) {
    steps.push({ id: 'tool', capability: env.ZIGGIE_TEST_CAPABILITY, action: 'tool', dependsOn: ['gate'], input: { tool: env.ZIGGIE_TEST_TOOL, arguments: JSON.parse(env.ZIGGIE_TEST_TOOL_ARGUMENTS || '{}') } });
  }
  const created = await api('POST', '/v1/tasks', bearer, { title: 'helm test', workspace: env.ZIGGIE_TEST_WORKSPACE, priority: 'P2', plan: { steps } });
  if (created.status !== 201) throw new Error(`POST /v1/tasks answered ${created.status}: ${JSON.stringify(created.body)}`);
  const id = created.body.id;
  log(`ok   task ${id} accepted`);

  await until('approval step waiting', async () => {
    const task = await api('GET', `/v1/tasks/${id}`, bearer);
    return stepOf(task.body, 'gate')?.status === 'waiting_approval';
  });
  const approved = await api('POST', `/v1/tasks/${id}/steps/gate/approve`, bearer, { decision: 'approve', comment: 'helm test' });
  if (approved.status !== 200) throw new Error(`approve answered ${approved.status}: ${JSON.stringify(approved.body)}`);
  log('ok   approval step approved');

  const task = await until('task finished', async () => {
    const res = await api('GET', `/v1/tasks/${id}`, bearer);
    return ['succeeded', 'failed', 'cancelled'].includes(res.body.status) ? res.body : undefined;
  });
  if (task.status !== 'succeeded') throw new Error(`task ${id} ended ${task.status}: ${JSON.stringify(task).slice(0, 2000)}`);
  log(`ok   task ${id} succeeded`);
}

/** In an Istio mesh the sidecar would keep the Pod running: tell it to stop. */
async function stopSidecar() {
  if (env.ZIGGIE_TEST_ISTIO !== 'true') return;
  await fetch('http://127.0.0.1:15020/quitquitquit', { method: 'POST' }).catch(() => undefined);
}

main().then(
  async () => {
    await stopSidecar();
    process.exit(0);
  },
  async (err) => {
    log(`FAIL ${err instanceof Error ? err.message : String(err)}`);
    await stopSidecar();
    process.exit(1);
  },
);
