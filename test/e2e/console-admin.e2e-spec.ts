import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { KubernetesApiDouble } from '../../services/mcp-gateway/test/fixtures/kubernetes-api-double';
import { consoleHarness } from './console-harness';

const NAMESPACE = 'ziggie';
const DEPLOYMENT = 'gpu-inference';
const ADMIN = 'admin@local';

/** Rows of the audit list, as the page shows them. */
function auditRows(page: Page) {
  return page.$$eval('[data-testid="audit-list"] tr[data-audit]', (rows) =>
    rows.map((r) => ({ action: r.getAttribute('data-action'), actor: r.getAttribute('data-actor'), text: r.textContent ?? '' })),
  );
}

/**
 * The console's admin screens in Debian's headless Chromium against the real local stack: an admin
 * scales a GPU pool and sees its replicas follow, writes a governance policy and sees the decision
 * it makes on a task, and finds their own calls in the audit log by action, the filter kept in the
 * address across a reload. A token without config:change sees the same screens with those actions
 * disabled and the reason beside them. The pool's pods run on a Kubernetes API double (the one
 * mcp-gateway's own tests use), as the local stack has no cluster; mcp-gateway drives it through
 * the real Kubernetes client.
 */
describe('the console\'s pools, policies and audit screens', () => {
  const kube = new KubernetesApiDouble({ readyDelayMs: 300 });
  const saved = { GPU_POOLS: process.env.GPU_POOLS, KUBECONFIG: process.env.KUBECONFIG };
  let kubeDir: string | undefined;

  // Before the harness starts the stack: its mcp-gateway reads GPU_POOLS and KUBECONFIG from the environment.
  beforeAll(async () => {
    await kube.start();
    kube.addDeployment(NAMESPACE, DEPLOYMENT, 1);
    kubeDir = mkdtempSync(join(tmpdir(), 'ziggie-console-admin-'));
    const kubeconfig = join(kubeDir, 'kubeconfig');
    kube.writeKubeconfig(kubeconfig, NAMESPACE);
    process.env.KUBECONFIG = kubeconfig;
    process.env.GPU_POOLS = JSON.stringify([
      { name: 'gpu', mode: 'deployment', deployment: DEPLOYMENT, minReplicas: 0, maxReplicas: 4 },
      { name: 'comfyui', mode: 'static', endpoints: [] },
    ]);
  });

  const harness = consoleHarness();
  const { signedIn, shot, token, api, expectApiErrors, figure } = harness;

  afterAll(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await kube.stop();
    if (kubeDir) rmSync(kubeDir, { recursive: true, force: true });
  });

  it('scales a GPU pool: a value outside its bounds is refused with its code, then the replicas follow', async () => {
    const lease = await api('/v1/pools/gpu/leases', { method: 'POST', body: JSON.stringify({ workspace: 'ziggie', units: 1, ttlSeconds: 600, holder: 'console-e2e' }) });
    expect(lease.status).toBe(201);
    const { page } = await signedIn('pools/gpu');
    await page.waitForFunction(() => (globalThis as any).document.querySelector('[data-testid="pool-replicas"]')?.textContent?.startsWith('deployment: 1 ready of 1'));
    expect(await page.textContent('tr[data-pool="gpu"] [data-testid="replicas"]')).toBe('1/1');
    expect(await page.textContent('tr[data-pool="comfyui"]')).toContain('static');
    await page.waitForSelector('[data-testid="pool-leases"] >> text=console-e2e');
    expect(await page.textContent('[data-testid="pool-in-use"]')).toMatch(/^1 of \d+/);

    expectApiErrors(['400 POST /v1/pools/gpu/scale']);
    await page.fill('[data-testid="scale-form"] input[name="replicas"]', '9');
    await page.click('[data-testid="scale-form"] button[type="submit"]');
    await page.waitForSelector('[data-testid="scale-form"] [data-code="POOL_SCALE_INVALID"]');
    expect(kube.deployment(NAMESPACE, DEPLOYMENT)?.replicas).toBe(1);

    const started = Date.now();
    await page.fill('[data-testid="scale-form"] input[name="replicas"]', '3');
    await page.click('[data-testid="scale-form"] button[type="submit"]');
    await page.waitForSelector('[data-testid="scale-result"]');
    expect(await page.textContent('[data-testid="scale-result"]')).toContain('3 desired');
    // The error of the refused request is gone once one succeeds.
    expect(await page.$('[data-testid="scale-form"] [data-code]')).toBeNull();
    expect(kube.deployment(NAMESPACE, DEPLOYMENT)?.replicas).toBe(3);
    await page.waitForFunction(() => (globalThis as any).document.querySelector('tr[data-pool="gpu"] [data-testid="replicas"]')?.textContent === '3/3', undefined, { timeout: 20_000 });
    figure(`pools: 3 of 3 replicas ready shown ${Date.now() - started} ms after the click on Scale`);
    await shot(page, 'pools');
  }, 60_000);

  it('creates a governance policy, sees it listed and the decision it makes on a task, edits and deletes it', async () => {
    const { page } = await signedIn('policies');
    await page.waitForSelector('[data-testid="policy-list"] table');

    // A refusal is shown beside the field it is about.
    expectApiErrors(['400 POST /v1/policies']);
    await page.click('[data-testid="new-policy"] button[type="submit"]');
    await page.waitForSelector('[data-testid="new-policy"] .field-error[data-field="name"]');
    expect(await page.getAttribute('[data-testid="new-policy"] [role="alert"]', 'data-code')).toBe('VALIDATION_FAILED');

    const name = `console e2e: no sums in ziggie ${Date.now()}`;
    await page.fill('[data-testid="new-policy"] input[name="name"]', name);
    await page.selectOption('[data-testid="new-policy"] select[name="effect"]', 'deny');
    await page.fill('[data-testid="new-policy"] input[name="priority"]', '10');
    await page.fill('[data-testid="new-policy"] input[name="match-tools"]', 'everything.get-sum');
    await page.fill('[data-testid="new-policy"] input[name="match-workspaces"]', 'ziggie');
    await page.click('[data-testid="new-policy"] button[type="submit"]');
    await page.waitForURL(/\/console\/policies\/pol_[a-f0-9]{16}$/);
    const id = /(pol_[a-f0-9]{16})$/.exec(page.url())![1]!;
    await page.waitForSelector(`[data-testid="policy-list"] tr[data-policy="${id}"]`);
    expect(await page.textContent(`tr[data-policy="${id}"]`)).toContain(name);
    expect(await page.textContent(`tr[data-policy="${id}"]`)).toContain('tools everything.get-sum · workspaces ziggie');

    // A task the policy denies: its step fails undispatched and the decision is recorded.
    const res = await api('/v1/tasks', {
      method: 'POST',
      body: JSON.stringify({ workspace: 'ziggie', plan: { steps: [{ id: 'sum', capability: 'data', input: { tool: 'everything.get-sum', arguments: { a: 2, b: 3 } } }] } }),
    });
    expect(res.status).toBe(201);
    const taskId = ((await res.json()) as { id: string }).id;
    await page.selectOption('[data-testid="decision-list"] select[name="effect"]', 'deny');
    await page.waitForURL(/[?&]effect=deny/);
    // Shown without a reload: the task's end on the event stream refreshes the decisions.
    await page.waitForSelector(`[data-testid="decision-list"] tr[data-decision-task="${taskId}"]`, { timeout: 30_000 });
    const row = await page.textContent(`tr[data-decision-task="${taskId}"]`);
    expect(row).toContain(name);
    expect(row).toContain('deny');
    expect(row).toContain(`policy ${name}: matched tools everything.get-sum, workspaces ziggie`);
    await shot(page, 'policies');

    await page.fill('[data-testid="policy-card"] input[name="priority"]', '20');
    await page.click('[data-testid="policy-card"] button[type="submit"]');
    await page.waitForSelector('[data-testid="policy-card"] >> text=Saved.');
    await page.waitForFunction((pid) => (globalThis as any).document.querySelector(`tr[data-policy="${pid}"] td`)?.textContent === '20', id);
    expect(((await (await api(`/v1/policies/${id}`)).json()) as { priority: number }).priority).toBe(20);

    await page.click('[data-testid="policy-card"] button.danger');
    await page.waitForURL(/\/console\/policies$/);
    await page.waitForSelector(`tr[data-policy="${id}"]`, { state: 'detached' });
    expect((await api(`/v1/policies/${id}`)).status).toBe(404);
  }, 60_000);

  it('filters the audit log by action and finds the admin\'s own calls of this run, the filter kept across a reload', async () => {
    // The action as the gateway records it (method and route template), from the API rather than retyped here.
    const recent = (await (await api(`/v1/audit?actor=${encodeURIComponent(ADMIN)}&limit=200`)).json()) as { items: Array<{ action: string; resource: string }> };
    const action = recent.items.find((e) => e.resource === '/v1/pools/gpu/scale')?.action;
    expect(action).toMatch(/^POST \/v1\/pools\/.+\/scale$/);

    const { page } = await signedIn('audit');
    await page.waitForSelector('[data-testid="audit-list"] tr[data-audit]');
    await page.fill('[data-testid="audit-list"] input[name="action"]', action!);
    await page.press('[data-testid="audit-list"] input[name="action"]', 'Enter');
    await page.waitForURL((url) => url.searchParams.get('action') === action);
    const check = async () => {
      await page.waitForFunction(
        (a) => {
          const rows = [...(globalThis as any).document.querySelectorAll('[data-testid="audit-list"] tr[data-audit]')];
          return rows.length > 0 && rows.every((r: any) => r.getAttribute('data-action') === a);
        },
        action,
      );
      const rows = await auditRows(page);
      // The refused scale and the one that succeeded, both by the admin in the first test.
      expect(rows.map((r) => r.actor)).toEqual(rows.map(() => ADMIN));
      expect(rows.length).toBeGreaterThanOrEqual(2);
      expect(rows.some((r) => r.text.includes('failure') && r.text.includes('POOL_SCALE_INVALID'))).toBe(true);
      expect(rows.some((r) => r.text.includes('success'))).toBe(true);
    };
    await check();
    await shot(page, 'audit');

    await page.reload();
    await check();
    expect(new URL(page.url()).searchParams.get('action')).toBe(action);
    expect(await page.inputValue('[data-testid="audit-list"] input[name="action"]')).toBe(action);
  }, 60_000);

  it('shows a token without config:change the admin actions disabled, with the reason', async () => {
    const { page } = await signedIn('pools/gpu', token(['l1']));
    await page.waitForSelector('[data-testid="pool-replicas"]');
    const reason = 'needs config:change (roles: l1)';
    expect(await page.isDisabled('[data-testid="scale-form"] button[type="submit"]')).toBe(true);
    expect(await page.isDisabled('[data-testid="capacity-form"] button[type="submit"]')).toBe(true);
    expect(await page.textContent('[data-testid="scale-form"] .denied')).toBe(`(${reason})`);
    expect(await page.getAttribute('[data-testid="scale-form"] button[type="submit"]', 'title')).toBe(reason);

    await page.click('nav >> text=Policies');
    await page.waitForSelector('[data-testid="policy-list"] table');
    expect(await page.isDisabled('[data-testid="new-policy"] button[type="submit"]')).toBe(true);
    expect(await page.textContent('[data-testid="new-policy"] .denied')).toBe(`(${reason})`);
    // Decisions are not an admin view: the list is there.
    await page.waitForSelector('[data-testid="decision-total"]');

    await page.click('nav >> text=Audit');
    expect(await page.textContent('[data-testid="audit-denied"]')).toBe(`The audit log ${reason}.`);
  }, 60_000);
});
