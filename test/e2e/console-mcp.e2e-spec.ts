import type { McpResourceListView, McpResourceReadView, McpStatsView } from '@ziggie/contracts';
import { consoleHarness } from './console-harness';

const TOOL = 'everything.get-sum';

/**
 * The MCP figures on the overview and the MCP console's resources and prompts, in Debian's headless
 * Chromium against the real local stack (server-everything is one of its bundled upstreams): tool
 * calls show up as calls per minute and the tool's p95, a finished task in the last hour's count,
 * a resource is read and shown as text, a prompt is got from a form of its arguments.
 */
describe('the console\'s MCP figures, resources and prompts', () => {
  const harness = consoleHarness();
  const { signedIn, shot, api, figure } = harness;

  it('shows MCP calls per minute and the called tool with its p95 on the overview, and tasks finished in the last hour', async () => {
    for (let i = 0; i < 4; i++) {
      const res = await api(`/v1/mcp/tools/${TOOL}/call`, { method: 'POST', body: JSON.stringify({ arguments: { a: i, b: 1 } }) });
      expect(res.status).toBe(200);
    }
    const stats = (await (await api('/v1/mcp/stats')).json()) as McpStatsView;
    const called = stats.items.find((t) => t.tool === TOOL)!;
    expect(called.last5m.calls).toBeGreaterThanOrEqual(4);
    expect(called.last5m.p95Ms).not.toBeNull();
    figure(`mcp stats: ${TOOL} ${called.last5m.calls} calls, p95 ${called.last5m.p95Ms} ms over ${stats.replicas} replica(s)`);

    const { context, page } = await signedIn('');
    try {
      await page.waitForSelector('[data-testid="tile-mcp"]');
      expect(Number(await page.textContent('[data-testid="tile-mcp-value"]'))).toBeGreaterThan(0);
      const row = page.locator(`[data-testid="mcp-top-tools"] tr[data-tool="${TOOL}"]`);
      await row.waitFor();
      expect(Number(await row.locator('td').nth(2).textContent())).toBeGreaterThanOrEqual(4);
      expect(await row.locator('[data-testid="tool-p95"]').textContent()).toMatch(/^[\d.,]+ (ms|s)$/);

      // A task finishing now counts in the last hour, live.
      await page.waitForSelector('[data-testid="live"][data-state="live"]');
      const before = Number(await page.textContent('[data-testid="tile-last-hour-value"]'));
      const res = await api('/v1/tasks', { method: 'POST', body: JSON.stringify({ workspace: 'ziggie', plan: { steps: [{ id: 'a', capability: 'qa', input: { tool: 'ziggie.noop' } }] } }) });
      expect(res.status).toBe(201);
      // A function, not a string: the page's CSP (no 'unsafe-eval') refuses to evaluate strings.
      await page.waitForFunction((n) => Number((globalThis as any).document.querySelector('[data-testid="tile-last-hour-value"]')?.textContent) > n, before);
      await shot(page, 'overview-mcp');
    } finally {
      await context.close();
    }
  }, 60_000);

  it('lists server-everything\'s resources, reads one as text, and reads a URI through a template', async () => {
    const listed = (await (await api('/v1/mcp/resources?limit=500')).json()) as McpResourceListView;
    const doc = listed.items.find((r) => r.uri.endsWith('/instructions.md'))!;
    expect(doc).toBeDefined();
    const read = (await (await api(`/v1/mcp/resources/read?uri=${encodeURIComponent(doc.uri)}`)).json()) as McpResourceReadView;
    const text = read.contents[0]!.text!;

    const { context, page } = await signedIn('mcp');
    try {
      await page.click('[data-tab="resources"]');
      expect(page.url()).toContain('tab=resources');
      await page.waitForSelector('[data-testid="mcp-resources"] [data-resource]');
      await page.fill('input[name="resource-search"]', 'instructions');
      expect(await page.$$eval('[data-testid="mcp-resources"] [data-resource]', (items) => items.map((i) => i.getAttribute('data-resource')))).toEqual([doc.uri]);
      await page.click(`[data-resource="${doc.uri}"]`);
      await page.waitForSelector('[data-testid="resource-contents"] pre');
      // The document's text, as text (markdown is not rendered, nothing in it runs).
      expect(await page.textContent('[data-testid="resource-contents"] pre.output')).toBe(text);
      await shot(page, 'mcp-resources');

      await page.fill('input[name="resource-search"]', '');
      await page.click('text=demo://resource/dynamic/text/{resourceId}');
      expect(await page.inputValue('#resource-uri')).toBe('demo://resource/dynamic/text/{resourceId}');
      await page.fill('#resource-uri', 'demo://resource/dynamic/text/7');
      await page.click('[data-testid="mcp-resources"] button[type="submit"]');
      await page.waitForSelector('[data-testid="resource-read"] >> text=demo://resource/dynamic/text/7');
      await page.waitForSelector('[data-testid="resource-contents"] pre');
      expect(await page.textContent('[data-testid="resource-contents"] pre.output')).toMatch(/7/);
    } finally {
      await context.close();
    }
  }, 60_000);

  it('gets a prompt from a form of its arguments and shows its messages', async () => {
    const { context, page } = await signedIn('mcp?tab=prompts');
    try {
      await page.waitForSelector('[data-testid="mcp-prompts"] [data-prompt]');
      await page.fill('input[name="prompt-search"]', 'args');
      await page.click('[data-prompt="everything.args-prompt"]');
      // The required argument is checked in the form, before any request.
      await page.click('text=Get prompt');
      expect(await page.textContent('[data-testid="get-prompt"] .field-error[data-field="city"]')).toBe('required');
      await page.fill('#prompt-city', '<b>Lyon</b>');
      await page.click('text=Get prompt');
      await page.waitForSelector('[data-testid="prompt-messages"]');
      expect(await page.getAttribute('[data-testid="prompt-messages"]', 'data-count')).toBe('1');
      expect(await page.getAttribute('[data-testid="prompt-messages"] .prompt-message', 'data-role')).toBe('user');
      expect(await page.textContent('[data-testid="prompt-messages"] pre.output')).toBe("What's weather in <b>Lyon</b>?");
      expect(await page.$$('[data-testid="prompt-messages"] b')).toHaveLength(0);
      await shot(page, 'mcp-prompts');
    } finally {
      await context.close();
    }
  }, 60_000);
});
