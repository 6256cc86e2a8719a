import { consoleUrl } from '../../cli/src/progress';
import { consoleHarness } from './console-harness';

const TASK_ID = /\/console\/tasks\/(tsk_[a-f0-9]{32})$/;

/**
 * The web console in Debian's headless Chromium against the real local stack: sign in through the
 * URL `ziggie up` prints, watch the overview go live, submit a blueprint from its generated form and
 * follow its waves to the end on the timeline, approve a waiting step, browse the agent tree from
 * L0 to an L3 agent, call a tool from the MCP console. Any script error, console error or CSP
 * violation on any page fails the test (the harness checks after each test).
 */
describe('the web console in headless Chromium', () => {
  const harness = consoleHarness();
  const { newContext, shot, token, api, figure, expectApiErrors } = harness;

  it('serves the console under a strict CSP, from the API\'s origin only', async () => {
    const page = await fetch(`${harness.stack.gatewayUrl}/console/`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toMatch(/https?:/);
    const html = await page.text();
    // No inline script: every <script> loads a file.
    expect([...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)].every((m) => m[0].includes(' src=') && m[1]!.trim() === '')).toBe(true);
    const bare = await fetch(`${harness.stack.gatewayUrl}/console`, { redirect: 'manual' });
    expect([bare.status, bare.headers.get('location')]).toEqual([301, '/console/']);
    expect((await fetch(`${harness.stack.gatewayUrl}/console/tasks/tsk_0123`)).status).toBe(200);
    const unknown = await fetch(`${harness.stack.gatewayUrl}/console/nowhere`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: 'NOT_FOUND' });
    const escape = await fetch(`${harness.stack.gatewayUrl}/console/assets/..%2F..%2Fpackage.json`);
    expect(escape.status).toBe(404);
    const script = /<script[^>]* src="([^"]+)"/.exec(html)![1]!;
    const js = await fetch(`${harness.stack.gatewayUrl}${script}`, { headers: { 'accept-encoding': 'gzip' } });
    expect([js.status, js.headers.get('content-encoding'), js.headers.get('content-type')]).toEqual([200, 'gzip', 'application/javascript; charset=utf-8']);
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect((await js.text()).length).toBeGreaterThan(0);
  });

  it('signs in from the fragment URL, forgets it in the address bar, and shows the overview live', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const url = consoleUrl(harness.stack.gatewayUrl, harness.stack.adminToken);
    expect(url).toContain('/console/#token=');
    const scripts: Array<Promise<number>> = [];
    page.on('response', (r) => {
      if (r.request().resourceType() === 'script') scripts.push(r.request().sizes().then((s) => s.responseBodySize));
    });
    const started = Date.now();
    await page.goto(url);
    await page.waitForSelector('[data-testid="overview"]');
    await page.waitForSelector('[data-testid="live"][data-state="live"]');
    figure(`overview with live figures: ${Date.now() - started} ms after navigation`);
    const transferred = (await Promise.all(scripts)).reduce((a, b) => a + b, 0);
    figure(`first load: ${scripts.length} script(s), ${transferred} bytes of JavaScript transferred`);
    expect(scripts.length).toBeGreaterThan(0);
    expect(page.url()).toBe(`${harness.stack.gatewayUrl}/console/`);
    expect(await page.evaluate(() => Object.values((globalThis as any).sessionStorage))).toEqual([harness.stack.adminToken]);
    // The default seed: 1,625 agents; per level, as many as the API lists at that level.
    expect(await page.textContent('[data-testid="tile-agents-value"]')).toBe('1,625');
    const listed = await Promise.all([0, 1, 2, 3].map(async (level) => ((await (await api(`/v1/agents?level=${level}&limit=1`)).json()) as { total: number }).total));
    const levels = await page.$$eval('[data-testid="agents-by-level"] tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].slice(0, 4).map((td) => td.textContent ?? '')));
    expect(levels.map(([level]) => level)).toEqual(['L0', 'L1', 'L2', 'L3']);
    expect(levels.map(([, ...counts]) => counts.map(Number).reduce((a, b) => a + b, 0))).toEqual(listed);
    expect(await page.$$eval('[data-testid="workspace-health"] tbody tr', (rows) => rows.length)).toBeGreaterThan(0);
    await page.waitForSelector('[data-testid="breakers-open"]');
    expect(await page.textContent('[data-testid="breakers-open"]')).toBe('0');
    await page.waitForSelector('[data-testid="pools"] tbody tr');

    // Live without a reload: a task finished elsewhere shows up in the completed count.
    const completed = Number(await page.textContent('[data-testid="tile-succeeded-value"]'));
    const res = await api('/v1/tasks', { method: 'POST', body: JSON.stringify({ workspace: 'ziggie', plan: { steps: [{ id: 'a', capability: 'qa', input: { tool: 'ziggie.noop' } }] } }) });
    expect(res.status).toBe(201);
    // A function, not a string: the page's CSP (no 'unsafe-eval') refuses to evaluate strings.
    await page.waitForFunction((n) => Number((globalThis as any).document.querySelector('[data-testid="tile-succeeded-value"]')?.textContent) > n, completed);
    await shot(page, 'overview');

    // Signed in for the rest of the tab's life: a reload keeps the session without the fragment.
    await page.reload();
    await page.waitForSelector('[data-testid="overview"]');
    await context.close();
  }, 60_000);

  it('submits character-variations with 10 variations from the generated form and shows its three waves complete on the timeline', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(consoleUrl(harness.stack.gatewayUrl, harness.stack.adminToken));
    await page.waitForSelector('[data-testid="live"][data-state="live"]');
    await page.click('nav >> text=Tasks');
    await page.waitForSelector('[data-testid="submit-task"] form');
    await page.selectOption('select[name="blueprint"]', 'character-variations');
    await page.fill('#bp-character', 'a cat warrior in copper armour');
    // Out of the schema's range: the form says so next to the field and sends nothing.
    await page.fill('#bp-variations', '17');
    await page.click('text=Submit task');
    expect(await page.textContent('[data-field="variations"]')).toBe('at most 16');
    await page.fill('#bp-variations', '10');
    await shot(page, 'tasks-submit');
    await page.click('text=Submit task');
    await page.waitForURL(TASK_ID);
    const taskId = TASK_ID.exec(page.url())![1]!;

    await page.waitForSelector('[data-testid="timeline"] [data-wave="3"]');
    await page.waitForSelector('[data-testid="task-detail"][data-status="succeeded"]', { timeout: 120_000 });
    // The timeline follows the events: every wave and bar ends up succeeded without a reload.
    await page.waitForFunction(() => [...(globalThis as any).document.querySelectorAll('[data-testid="timeline"] .bar')].every((b: any) => b.getAttribute('data-status') === 'succeeded'));
    const waves = await page.$$eval('[data-testid="timeline"] [data-wave]', (nodes) =>
      nodes.map((n) => ({ wave: n.getAttribute('data-wave'), status: n.getAttribute('data-status'), bars: n.querySelectorAll('.bar').length })),
    );
    expect(waves).toEqual([
      { wave: '1', status: 'succeeded', bars: 1 },
      { wave: '2', status: 'succeeded', bars: 10 },
      { wave: '3', status: 'succeeded', bars: 1 },
    ]);
    // Bars of a later wave start no earlier than the previous wave's bars (waves run in order).
    const lefts = await page.$$eval('[data-testid="timeline"] [data-wave]', (nodes) => nodes.map((n) => Math.min(...[...n.querySelectorAll('.bar')].map((b) => b.getBoundingClientRect().left))));
    expect(lefts[1]).toBeGreaterThanOrEqual(lefts[0]!);
    expect(lefts[2]).toBeGreaterThanOrEqual(lefts[1]!);
    expect(await page.textContent('[data-testid="wave-progress"]')).toBe('3/3');
    const events = await page.$$eval('[data-testid="events"] li code', (nodes) => nodes.map((n) => n.textContent));
    expect(events[0]).toBe('task.queued');
    expect(events).toContain('task.succeeded');
    expect(events.filter((e) => e === 'step.succeeded')).toHaveLength(12);

    // A step's card: its agent, attempts and output, rendered as text.
    await page.click('[data-testid="timeline"] [data-wave="3"] .bar');
    await page.waitForSelector('[data-testid="step-card"]');
    expect(await page.textContent('[data-testid="step-card"] pre.output')).toContain('Review of 10 variations of a cat warrior in copper armour');
    await shot(page, 'task-detail');

    // The list, filtered by its URL: a deep link shows the finished task.
    await page.goto(`${harness.stack.gatewayUrl}/console/tasks?status=succeeded&blueprint=character-variations`);
    await page.waitForSelector(`[data-task="${taskId}"]`);
    expect(await page.inputValue('select[name="status"]')).toBe('succeeded');
    await shot(page, 'tasks');
    await page.goto(`${harness.stack.gatewayUrl}/console/tasks?status=failed&blueprint=character-variations`);
    await page.waitForSelector('text=No tasks match.');
    await context.close();
  }, 180_000);

  it('approves a step waiting at its approval gate, and shows the API\'s problem code on errors', async () => {
    const echo = (id: string, message: string, extra: object = {}) => ({ id, capability: 'qa', input: { tool: 'everything.echo', arguments: { message } }, ...extra });
    const res = await api('/v1/tasks', {
      method: 'POST',
      body: JSON.stringify({ workspace: 'ziggie', title: 'needs a sign-off', plan: { steps: [echo('draft', 'draft'), { id: 'sign-off', capability: 'qa', action: 'approval', dependsOn: ['draft'] }, echo('publish', 'published', { dependsOn: ['sign-off'] })] } }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(consoleUrl(harness.stack.gatewayUrl, harness.stack.adminToken).replace('/console/#', `/console/tasks/${id}#`));
    await page.waitForSelector('[data-approve="sign-off"]');
    await shot(page, 'task-approval');
    await page.click('[data-approve="sign-off"]');
    await page.waitForSelector('[data-testid="task-detail"][data-status="succeeded"]');
    const task = (await (await api(`/v1/tasks/${id}`)).json()) as { waves: Array<{ steps: Array<{ id: string; approvedBy: string | null }> }> };
    expect(task.waves.flatMap((w) => w.steps).find((s) => s.id === 'sign-off')?.approvedBy).toBe('admin@local');

    // The page asks for the task and its event stream: both are refused, once each.
    expectApiErrors(['404 GET /v1/tasks/tsk_00000000000000000000000000000000', '404 GET /v1/tasks/tsk_00000000000000000000000000000000/events']);
    await page.goto(`${harness.stack.gatewayUrl}/console/tasks/tsk_00000000000000000000000000000000`);
    await page.waitForSelector('[role="alert"][data-code="TASK_NOT_FOUND"]');
    expect(await page.textContent('[role="alert"]')).toContain('not found');
    await context.close();
  }, 60_000);

  it('submits a raw plan, shows a plan error with its code where it occurs, and cancels a task', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(consoleUrl(harness.stack.gatewayUrl, harness.stack.adminToken).replace('/console/#', '/console/tasks#'));
    await page.click('text=Write a plan as JSON…');
    const bad = { steps: [{ id: 'first', capability: 'qa', input: { tool: 'ziggie.noop' } }, { id: 'broken', capability: 'qa', input: { tool: 42 } }] };
    await page.fill('textarea[name="plan"]', JSON.stringify(bad, null, 2));
    expectApiErrors(['400 POST /v1/tasks']);
    await page.click('text=Submit plan');
    await page.waitForSelector('[data-testid="submit-plan"] [role="alert"][data-code="TASK_INVALID_PLAN"]');
    expect(await page.textContent('[data-testid="submit-plan"] .error-where')).toBe('step broken · at input.tool');
    const line = JSON.stringify(bad, null, 2).split('\n').findIndex((l) => l.includes('"id": "broken"')) + 1;
    expect(await page.textContent('[data-testid="plan-error-line"]')).toBe(`line ${line}: step broken`);
    await shot(page, 'tasks-plan-error');

    const gated = { steps: [{ id: 'sign-off', capability: 'qa', action: 'approval' }, { id: 'after', capability: 'qa', dependsOn: ['sign-off'], input: { tool: 'ziggie.noop' } }] };
    await page.fill('textarea[name="plan"]', JSON.stringify(gated));
    await page.click('text=Submit plan');
    await page.waitForURL(TASK_ID);
    await page.waitForSelector('[data-approve="sign-off"]');
    await page.click('text=Cancel task');
    await page.waitForSelector('[data-testid="task-detail"][data-status="cancelled"]');
    expect(await page.getAttribute('[data-testid="timeline"] [data-step="after"]', 'data-status')).toBe('cancelled');
    await context.close();
  }, 60_000);

  it('filters and pages the task list and searches the agents, every filter and page in the address', async () => {
    // More tasks than a page (25) in one workspace, all succeeded, submitted by a user of their own:
    // the page's user lives within its default rate limit.
    const submitter = { authorization: `Bearer ${token(['admin'], ['fitflow'])}` };
    for (let i = 0; i < 27; i++) {
      const res = await api('/v1/tasks', { method: 'POST', headers: submitter, body: JSON.stringify({ title: `page ${i}`, workspace: 'fitflow', plan: { steps: [{ id: 'a', capability: 'qa', input: { tool: 'ziggie.noop' } }] } }) });
      expect(res.status).toBe(201);
    }
    const count = async (path: string) => ((await (await api(path, { headers: submitter })).json()) as { total: number }).total;
    let total = 0;
    for (let tries = 0; tries < 40 && total < 27; tries++) {
      total = await count('/v1/tasks?workspace=fitflow&status=succeeded&limit=1');
      if (total < 27) await new Promise((r) => setTimeout(r, 750));
    }
    expect(total).toBeGreaterThanOrEqual(27);

    const { context, page } = await harness.signedIn('tasks?workspace=fitflow&status=succeeded');
    await page.waitForSelector('[data-testid="task-list"] tbody tr[data-task]');
    expect(await page.textContent('[data-testid="task-total"]')).toBe(`${total.toLocaleString('en')} tasks`);
    const first = await page.$$eval('[data-testid="task-list"] tbody tr[data-task]', (rows) => rows.map((r) => r.getAttribute('data-task')));
    expect(first).toHaveLength(25);
    await page.click('[data-testid="task-list"] button:has-text("Next page")');
    await page.waitForFunction(() => new URL((globalThis as any).location.href).searchParams.has('cursor'));
    await page.waitForFunction((seen) => {
      const ids = [...(globalThis as any).document.querySelectorAll('[data-testid="task-list"] tbody tr[data-task]')].map((r: any) => r.getAttribute('data-task'));
      return ids.length > 0 && !ids.some((id: string) => seen.includes(id));
    }, first);
    // The page is in the address: a reload shows the same page.
    const second = await page.$$eval('[data-testid="task-list"] tbody tr[data-task]', (rows) => rows.map((r) => r.getAttribute('data-task')));
    await page.reload();
    await page.waitForSelector('[data-testid="task-list"] tbody tr[data-task]');
    expect(await page.$$eval('[data-testid="task-list"] tbody tr[data-task]', (rows) => rows.map((r) => r.getAttribute('data-task')))).toEqual(second);
    // Another filter is another list: its first page.
    await page.selectOption('[data-testid="task-list"] select[name="status"]', 'failed');
    await page.waitForFunction(() => {
      const params = new URL((globalThis as any).location.href).searchParams;
      return params.get('status') === 'failed' && !params.has('cursor') && params.get('workspace') === 'fitflow';
    });

    // Agents by capability, the filter in the address.
    await page.click('nav >> text=Agents');
    await page.fill('.agents .filters input[name="capability"]', 'qa');
    await page.press('.agents .filters input[name="capability"]', 'Enter');
    await page.waitForFunction(() => new URL((globalThis as any).location.href).searchParams.get('capability') === 'qa');
    const qa = ((await (await api('/v1/agents?capability=qa&limit=1', { headers: { authorization: `Bearer ${token(['admin'])}` } })).json()) as { total: number }).total;
    await page.waitForSelector(`[data-testid="agent-tree"] h2:has-text("Agents matching (${qa})")`);
    await context.close();
  }, 120_000);

  it('browses the agent tree from L0 down to an L3 agent', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(consoleUrl(harness.stack.gatewayUrl, harness.stack.adminToken));
    await page.waitForSelector('[data-testid="live"][data-state="live"]');
    const opened = Date.now();
    await page.click('nav >> text=Agents');
    await page.waitForSelector('[data-testid="agent-tree"] [data-level="0"]');
    figure(`agent tree (1,625 agents) first rows: ${Date.now() - opened} ms after the click`);
    await page.click('[data-testid="agent-tree"] [data-agent^="l0-"] [data-toggle]');
    const expanded = Date.now();
    await page.waitForSelector('[data-testid="agent-tree"] [data-level="1"]');
    figure(`agent tree: L0's ${await page.$eval('[data-testid="agent-tree"] .tree', (t) => Number(t.getAttribute('data-rows')) - 1)} reports shown ${Date.now() - expanded} ms after the click`);
    await page.click('[data-testid="agent-tree"] [data-agent^="l0-"] [data-toggle]');
    // Down the chain of command (L1 specialists and their teams: the elite agents have no reports).
    for (const level of [0, 1, 2]) {
      await page.click(`[data-testid="agent-tree"] [data-agent^="l${level}-"] [data-toggle]`);
      await page.waitForSelector(`[data-testid="agent-tree"] [data-agent^="l${level + 1}-"]`);
    }
    const leaf = page.locator('[data-testid="agent-tree"] [data-agent^="l3-"] a').first();
    const leafId = await leaf.textContent();
    await leaf.click();
    await page.waitForSelector('[data-testid="agent-card"]');
    expect(page.url()).toBe(`${harness.stack.gatewayUrl}/console/agents/${leafId}`);
    expect(await page.textContent('[data-testid="agent-card"]')).toContain('L3');
    // Virtualized: the DOM holds the rows in view, not every open row.
    const [inDom, open] = await page.$eval('[data-testid="agent-tree"] .tree', (t) => [t.querySelectorAll('.tree-row').length, Number(t.getAttribute('data-rows'))]);
    expect(inDom).toBeLessThanOrEqual(open);
    await shot(page, 'agents');
    await context.close();
  }, 60_000);

  it('shows the workspaces with their health and dependencies, and one workspace\'s health and port leases', async () => {
    const lease = await api('/v1/workspaces/ziggie/ports', { method: 'POST', body: JSON.stringify({ service: 'console-e2e' }) });
    expect(lease.status).toBe(201);
    const { port } = (await lease.json()) as { port: number };
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(consoleUrl(harness.stack.gatewayUrl, harness.stack.adminToken));
    await page.click('[data-testid="workspace-health"] >> text=Ziggie');
    await page.waitForSelector('[data-testid="workspace-card"] >> text=console-e2e');
    expect(page.url()).toBe(`${harness.stack.gatewayUrl}/console/workspaces/ziggie`);
    const listed = (await (await api('/v1/workspaces?limit=500')).json()) as { items: Array<{ id: string; dependsOn: string[] }> };
    const rows = await page.$$eval('[data-testid="workspace-list"] [data-workspace]', (nodes) => nodes.map((n) => n.getAttribute('data-workspace')));
    expect(rows).toEqual(listed.items.map((w) => w.id));
    expect(await page.textContent('[data-testid="workspace-card"] table')).toContain(String(port));
    await shot(page, 'workspaces');
    await context.close();
  }, 60_000);

  it('calls a tool from the MCP console with a form built from its input schema, and shows the result as text', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(consoleUrl(harness.stack.gatewayUrl, harness.stack.adminToken));
    await page.click('nav >> text=MCP');
    await page.waitForSelector('[data-testid="mcp-servers"] tbody tr');
    // An admin sees the quarantine of changed tool definitions (none here: every tool matches its pin).
    await page.waitForSelector('[data-testid="mcp-pins"] >> text=No tool waits for approval');
    await page.fill('input[name="tool-search"]', 'everything.echo');
    await page.click('[data-tool="everything.echo"]');
    await page.fill('#tool-message', '<img src=x onerror="console.error(1)"> hello');
    await page.click('text=Call tool');
    await page.waitForSelector('[data-testid="tool-result"]');
    expect(await page.textContent('[data-testid="tool-result"] pre')).toBe('Echo: <img src=x onerror="console.error(1)"> hello');
    expect(await page.$$('[data-testid="tool-result"] img')).toHaveLength(0);

    // A long call reports its progress as it goes, then its result.
    await page.fill('input[name="tool-search"]', 'long-running');
    await page.click('[data-tool="everything.trigger-long-running-operation"]');
    await page.fill('#tool-duration', '1');
    await page.fill('#tool-steps', '3');
    await page.click('text=Call tool');
    await page.waitForSelector('[data-testid="tool-progress"]');
    await page.waitForSelector('[data-testid="tool-result"]');
    expect(await page.textContent('[data-testid="tool-progress"]')).toMatch(/^Progress \d \/ 3/);
    expect(Number(await page.getAttribute('[data-testid="tool-progress"]', 'data-count'))).toBeGreaterThanOrEqual(2);
    expect(await page.textContent('[data-testid="tool-result"] pre')).toMatch(/Long running operation completed/);
    await shot(page, 'mcp');
    await context.close();
  }, 60_000);

  it('streams GET /v1/events to each token for its own workspaces only', async () => {
    /** Reads an SSE stream in the background into `events` until aborted. */
    const follow = (bearer: string) => {
      const abort = new AbortController();
      const events: Array<{ event: string; data: { taskId?: string; type?: string } }> = [];
      const done = (async () => {
        const res = await fetch(`${harness.stack.gatewayUrl}/v1/events`, { headers: { authorization: `Bearer ${bearer}`, accept: 'text/event-stream' }, signal: abort.signal });
        expect(res.headers.get('content-type')).toContain('text/event-stream');
        const decoder = new TextDecoder();
        let buffer = '';
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = /^event: (.+)$/m.exec(block)?.[1];
            const data = /^data: (.+)$/m.exec(block)?.[1];
            if (event && data) events.push({ event, data: JSON.parse(data) });
          }
        }
      })().catch((err: unknown) => {
        if (!abort.signal.aborted) throw err;
      });
      return { events, stop: async () => { abort.abort(); await done; } };
    };
    const waitFor = async (what: () => boolean) => {
      for (let i = 0; i < 300 && !what(); i++) await new Promise((r) => setTimeout(r, 100));
      expect(what()).toBe(true);
    };
    const all = follow(harness.stack.adminToken);
    const fitflow = follow(token(['l1'], ['fitflow']));
    await waitFor(() => all.events.some((e) => e.event === 'ready') && fitflow.events.some((e) => e.event === 'ready'));
    const submit = async (workspace: string) => {
      const res = await api('/v1/tasks', { method: 'POST', body: JSON.stringify({ workspace, plan: { steps: [{ id: 'hello', capability: 'qa', input: { tool: 'everything.echo', arguments: { message: workspace } } }] } }) });
      expect(res.status).toBe(201);
      return ((await res.json()) as { id: string }).id;
    };
    const ended = (stream: ReturnType<typeof follow>, id: string) => () => stream.events.some((e) => e.event === 'task' && e.data.taskId === id && e.data.type === 'task.succeeded');
    const ziggie = await submit('ziggie');
    await waitFor(ended(all, ziggie));
    const theirs = await submit('fitflow');
    await waitFor(ended(fitflow, theirs));
    await waitFor(ended(all, theirs));
    await all.stop();
    await fitflow.stop();
    const tasksSeen = (stream: ReturnType<typeof follow>) => [...new Set(stream.events.filter((e) => e.event === 'task').map((e) => e.data.taskId))];
    expect(tasksSeen(fitflow)).toEqual([theirs]);
    expect(tasksSeen(all)).toEqual(expect.arrayContaining([ziggie, theirs]));
  }, 60_000);

  it('disables the actions a role may not take and says why: an l2l3 token cannot submit a task and sees no admin action', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(consoleUrl(harness.stack.gatewayUrl, token(['l2l3'], ['ziggie'])).replace('/console/#', '/console/tasks#'));
    await page.waitForSelector('[data-testid="submit-task"] button[type="submit"]');
    expect(await page.isDisabled('[data-testid="submit-task"] button[type="submit"]')).toBe(true);
    expect(await page.textContent('[data-testid="submit-task"] .denied')).toContain('needs agent:dispatch');

    // No admin action without config:change: the MCP console has no quarantine approvals for it.
    await page.click('nav >> text=MCP');
    await page.waitForSelector('[data-testid="mcp-tools"] [data-tool]');
    expect(await page.$('[data-testid="mcp-pins"]')).toBeNull();
    expect(await page.$$('text=Approve the new definition')).toHaveLength(0);
    await shot(page, 'mcp-l2l3');
    await context.close();
  }, 60_000);
});
