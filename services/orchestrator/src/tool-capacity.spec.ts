import { serverOf, ToolCapacity } from './tool-capacity';

describe('ToolCapacity', () => {
  it('admits everything until a refusal taught it a limit', () => {
    const capacity = new ToolCapacity();
    expect(capacity.active).toBe(false);
    const counts = capacity.inFlight([{ subject: 'alice', tool: 'everything.echo', n: 500 }]);
    expect(capacity.admit('alice', 'everything.echo', counts)).toEqual({ ok: true });
  });

  it('holds one caller\'s calls of a tool at the limit the gateway gave, counting the calls it admits', () => {
    const capacity = new ToolCapacity();
    capacity.learn({ subject: 'alice', tool: 'everything.echo', scope: 'tool', limit: 3 });
    expect(capacity.active).toBe(true);
    const counts = capacity.inFlight([{ subject: 'alice', tool: 'everything.echo', n: 1 }]);
    expect(capacity.admit('alice', 'everything.echo', counts)).toEqual({ ok: true });
    expect(capacity.admit('alice', 'everything.echo', counts)).toEqual({ ok: true });
    expect(capacity.admit('alice', 'everything.echo', counts)).toEqual({ ok: false, reason: 'waiting for capacity: tool everything.echo for caller alice admits 3 calls at once' });
    // Other callers and other tools have their own share.
    expect(capacity.admit('bob', 'everything.echo', counts)).toEqual({ ok: true });
    expect(capacity.admit('alice', 'everything.get-sum', counts)).toEqual({ ok: true });
  });

  it('holds a server\'s calls from every caller and tool at its capacity', () => {
    const capacity = new ToolCapacity();
    capacity.learn({ subject: 'alice', tool: 'comfyui.render', scope: 'server', limit: 2 });
    const counts = capacity.inFlight([
      { subject: 'bob', tool: 'comfyui.upscale', n: 1 },
      { subject: 'carol', tool: 'everything.echo', n: 9 },
    ]);
    expect(capacity.admit('dave', 'comfyui.render', counts)).toEqual({ ok: true });
    expect(capacity.admit('erin', 'comfyui.other', counts)).toEqual({ ok: false, reason: 'waiting for capacity: server comfyui admits 2 calls at once' });
    expect(capacity.admit('erin', 'everything.echo', counts)).toEqual({ ok: true });
  });

  it('lists the limits that are reached, to keep their steps out of a round', () => {
    const capacity = new ToolCapacity();
    capacity.learn({ subject: 'alice', tool: 'everything.echo', scope: 'tool', limit: 2 });
    capacity.learn({ subject: 'bob', tool: 'everything.echo', scope: 'tool', limit: 2 });
    capacity.learn({ subject: 'bob', tool: 'comfyui.render', scope: 'server', limit: 1 });
    const counts = capacity.inFlight([
      { subject: 'alice', tool: 'everything.echo', n: 2 },
      { subject: 'bob', tool: 'everything.echo', n: 1 },
      { subject: 'carol', tool: 'comfyui.upscale', n: 1 },
    ]);
    expect(capacity.full(counts)).toEqual([
      { scope: 'tool', subject: 'alice', tool: 'everything.echo', reason: 'waiting for capacity: tool everything.echo for caller alice admits 2 calls at once' },
      { scope: 'server', server: 'comfyui', reason: 'waiting for capacity: server comfyui admits 1 calls at once' },
    ]);
  });

  it('forgets a limit after a while without refusals, and keeps it while they go on', () => {
    let now = 0;
    const capacity = new ToolCapacity(1000, () => now);
    capacity.learn({ subject: 'alice', tool: 'x.y', scope: 'tool', limit: 1 });
    now = 900;
    capacity.learn({ subject: 'alice', tool: 'x.y', scope: 'tool', limit: 1 });
    now = 1500;
    expect(capacity.active).toBe(true);
    expect(capacity.admit('alice', 'x.y', capacity.inFlight([{ subject: 'alice', tool: 'x.y', n: 1 }])).ok).toBe(false);
    now = 2000;
    expect(capacity.active).toBe(false);
    expect(capacity.admit('alice', 'x.y', capacity.inFlight([{ subject: 'alice', tool: 'x.y', n: 1 }])).ok).toBe(true);
  });

  it('ignores a refusal without a usable limit', () => {
    const capacity = new ToolCapacity();
    for (const limit of [0, -1, 1.5, Number.NaN]) capacity.learn({ subject: 'a', tool: 'x.y', scope: 'tool', limit });
    expect(capacity.active).toBe(false);
  });

  it('takes the server from the catalog name', () => {
    expect(serverOf('everything.echo')).toBe('everything');
    expect(serverOf('ollama.chat.v2')).toBe('ollama');
    expect(serverOf('plain')).toBe('plain');
  });
});
