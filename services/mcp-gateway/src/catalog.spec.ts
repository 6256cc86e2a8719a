import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { Cursors } from '@ziggie/contracts';
import { buildCatalog, definitionHash, MAX_TOOL_NAME, namespacedName, pageOf, PinRecord } from './catalog';
import type { ToolProvider } from './providers/provider';

const tool = (name: string, description = 'd'): Tool => ({ name, description, inputSchema: { type: 'object' } });

function provider(name: string, tools: Tool[], status: ToolProvider['status'] = 'ready'): ToolProvider {
  return {
    name,
    transport: 'stdio',
    status,
    lastError: '',
    tools,
    resources: [],
    prompts: [],
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    callTool: () => Promise.reject(new Error('not called')),
    replicas: () => [],
  };
}

describe('catalog naming', () => {
  it('namespaces as server.tool and keeps short valid names unchanged', () => {
    expect(namespacedName('everything', 'get-sum')).toBe('everything.get-sum');
  });

  it('shortens long names to 64 characters with a stable hash suffix', () => {
    const long = 'a'.repeat(100);
    const name = namespacedName('srv', long);
    expect(name).toHaveLength(MAX_TOOL_NAME);
    expect(name).toMatch(/^srv\.a+_[0-9a-f]{8}$/);
    expect(namespacedName('srv', long)).toBe(name);
    expect(namespacedName('srv', `${long}b`)).not.toBe(name);
  });

  it('replaces characters outside the MCP tool-name alphabet and keeps the result unique', () => {
    expect(namespacedName('srv', 'read file')).toMatch(/^srv\.read_file_[0-9a-f]{8}$/);
    const { snapshot } = buildCatalog([provider('srv', [tool('a b'), tool('a_b')])], () => undefined);
    const names = snapshot.tools.map((t) => t.name);
    expect(new Set(names).size).toBe(2);
    expect(names).toContain('srv.a_b');
  });

  it('resolves clashes the same way whatever order providers and tools arrive in', () => {
    const long = 'x'.repeat(80);
    const a = buildCatalog([provider('s', [tool(`${long}1`), tool(`${long}2`)])], () => undefined).snapshot.tools.map((t) => [t.upstreamName, t.name]);
    const b = buildCatalog([provider('s', [tool(`${long}2`), tool(`${long}1`)])], () => undefined).snapshot.tools.map((t) => [t.upstreamName, t.name]);
    expect(a).toEqual(b);
  });
});

describe('catalog pins', () => {
  it('lists unpinned tools (to be pinned), pinned matching tools, and quarantines changed ones', () => {
    const original = tool('t', 'original');
    const pins = new Map<string, PinRecord>([['s.t', { name: 's.t', server: 's', pinnedHash: definitionHash(original), pinned: original, updatedAt: '' }]]);
    const same = buildCatalog([provider('s', [original, tool('new')])], (n) => pins.get(n));
    expect(same.snapshot.tools.map((t) => t.name)).toEqual(['s.new', 's.t']);
    expect(same.unpinned.map((t) => t.name)).toEqual(['s.new']);
    const changed = buildCatalog([provider('s', [tool('t', 'changed')])], (n) => pins.get(n));
    expect(changed.snapshot.tools).toEqual([]);
    expect([...changed.snapshot.quarantined.keys()]).toEqual(['s.t']);
  });

  it('hashes the whole definition independent of key order', () => {
    expect(definitionHash({ a: 1, b: { c: 2, d: 3 } })).toBe(definitionHash({ b: { d: 3, c: 2 }, a: 1 }));
    expect(definitionHash(tool('t', 'x'))).not.toBe(definitionHash({ ...tool('t', 'x'), annotations: { destructiveHint: true } }));
  });

  it('leaves out providers that are not ready and tools the allow list excludes', () => {
    const { snapshot, unpinned } = buildCatalog([provider('up', [tool('a'), tool('b')]), provider('down', [tool('c')], 'failed')], () => undefined, (_p, name) => name !== 'b');
    expect(snapshot.tools.map((t) => t.name)).toEqual(['up.a']);
    expect(unpinned.map((t) => t.name)).toEqual(['up.a']);
  });

  it('keeps listing a provider that is down by design (its GPU pool at zero) with the tools it last had', () => {
    const providers = [provider('up', [tool('a')]), provider('pooled', [tool('gen')], 'failed'), provider('down', [tool('c')], 'failed')];
    const { snapshot } = buildCatalog(providers, () => undefined, undefined, (p) => p.name === 'pooled');
    expect(snapshot.tools.map((t) => t.name)).toEqual(['pooled.gen', 'up.a']);
  });
});

describe('catalog pages', () => {
  const items = ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name }));

  it('pages by keyset with an opaque cursor', () => {
    const first = pageOf(items, undefined, 2);
    expect(first.items.map((i) => i.name)).toEqual(['a', 'b']);
    expect(first.nextCursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Cursors.mcpCatalog.decode(first.nextCursor)).toEqual({ name: 'b' });
    const second = pageOf(items, first.nextCursor, 2);
    expect(second.items.map((i) => i.name)).toEqual(['c', 'd']);
    const last = pageOf(items, second.nextCursor, 2);
    expect(last.items.map((i) => i.name)).toEqual(['e']);
    expect(last.nextCursor).toBeUndefined();
  });

  it('stays correct when the list changes between pages', () => {
    const first = pageOf(items, undefined, 2);
    const shrunk = items.filter((i) => i.name !== 'a');
    expect(pageOf(shrunk, first.nextCursor, 2).items.map((i) => i.name)).toEqual(['c', 'd']);
  });

  it('refuses a cursor it did not issue', () => {
    for (const bad of ['garbage', '99999999999999999999', '-5', Buffer.from('{"after":"b"}').toString('base64url'), Cursors.tasks.encode({ offset: 2 })]) {
      expect(() => pageOf(items, bad, 2)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/^cursor: /) }));
    }
    expect(pageOf(items, Cursors.mcpCatalog.encode({ name: 'c' }), 2).items.map((i) => i.name)).toEqual(['d', 'e']);
  });
});
