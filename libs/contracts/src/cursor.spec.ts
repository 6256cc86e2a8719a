import fc from 'fast-check';
import { CURSOR_MAX_LENGTH, CURSOR_MAX_OFFSET, Cursors, cursorCodec, invalidCursor, OffsetPosition, parseCursorEnvelope } from './cursor';
import { ZiggieError } from './errors';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');

function refusal(fn: () => unknown): ZiggieError {
  try {
    fn();
  } catch (err) {
    return err as ZiggieError;
  }
  throw new Error('expected the cursor to be refused');
}

function expectRefused(fn: () => unknown): void {
  const err = refusal(fn);
  expect(err).toBeInstanceOf(ZiggieError);
  expect(err.code).toBe('VALIDATION_FAILED');
  expect(err.httpStatus).toBe(400);
  expect(err.message).toMatch(/^cursor: /);
  expect(err.extras).toEqual({ errors: [{ path: 'cursor', message: expect.any(String) }] });
}

describe('cursor codec', () => {
  it('round-trips every kind of position', () => {
    expect(Cursors.tasks.decode(Cursors.tasks.encode({ offset: 0 }))).toEqual({ offset: 0 });
    expect(Cursors.tasks.decode(Cursors.tasks.encode({ offset: CURSOR_MAX_OFFSET }))).toEqual({ offset: CURSOR_MAX_OFFSET });
    expect(Cursors.agents.decode(Cursors.agents.encode({ level: 3, id: 'l3-ziggie-01-01-01' }))).toEqual({ level: 3, id: 'l3-ziggie-01-01-01' });
    const audit = { at: '2025-11-21T10:00:00.123Z', id: '0b7c6a44-7d1e-4c39-9a53-1f0d1c2b3a4e' };
    expect(Cursors.audit.decode(Cursors.audit.encode(audit))).toEqual(audit);
    expect(Cursors.mcpCatalog.decode(Cursors.mcpCatalog.encode({ name: 'everything.echo' }))).toEqual({ name: 'everything.echo' });
    expect(Cursors.workspaces.decode(Cursors.workspaces.encode({ id: 'fitflow' }))).toEqual({ id: 'fitflow' });
  });

  it('is opaque: base64url without padding, no bare numbers or names', () => {
    const c = Cursors.tasks.encode({ offset: 50 });
    expect(c).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(c).not.toBe('50');
    expect(Cursors.mcpCatalog.encode({ name: 'everything.echo' })).not.toContain('everything');
  });

  it('reads an absent or empty cursor as the first page', () => {
    expect(Cursors.tasks.decode(undefined)).toBeUndefined();
    expect(Cursors.tasks.decode(null)).toBeUndefined();
    expect(Cursors.tasks.decode('')).toBeUndefined();
  });

  it.each([
    ['a huge number', '99999999999999999999'],
    ['a negative number', '-5'],
    ['a plain offset', '50'],
    ['garbage', 'garbage'],
    ['characters outside base64url', 'ab+/cd=='],
    ['padding', `${b64('{"v":1,"k":"tasks","p":{"offset":1}}')}=`],
    ['spaces', ' eyJ2IjoxfQ'],
    ['not JSON', b64('not json')],
    ['invalid UTF-8', Buffer.from([0xff, 0xfe, 0x7b]).toString('base64url')],
    ['JSON that is not an envelope', b64('[1,"x"]')],
    ['another version', b64('{"v":2,"k":"tasks","p":{"offset":1}}')],
    ['an extra envelope member', b64('{"v":1,"k":"tasks","p":{"offset":1},"x":1}')],
    ['a negative offset', b64('{"v":1,"k":"tasks","p":{"offset":-5}}')],
    ['a fractional offset', b64('{"v":1,"k":"tasks","p":{"offset":1.5}}')],
    ['an offset beyond the bound', b64(`{"v":1,"k":"tasks","p":{"offset":${CURSOR_MAX_OFFSET + 1}}}`)],
    ['an unsafe integer offset', b64('{"v":1,"k":"tasks","p":{"offset":99999999999999999999}}')],
    ['an offset as a string', b64('{"v":1,"k":"tasks","p":{"offset":"1"}}')],
    ['an extra position member', b64('{"v":1,"k":"tasks","p":{"offset":1,"x":1}}')],
    ['an empty position', b64('{"v":1,"k":"tasks","p":{}}')],
    ['another list\'s cursor', Cursors.policies.encode({ offset: 1 })],
    ['a keyset cursor', Cursors.workspaces.encode({ id: 'ziggie' })],
    ['the old offset cursor of the gateway', b64('{"offset":1}')],
    ['too long', 'A'.repeat(CURSOR_MAX_LENGTH + 1)],
  ])('refuses %s with 400 VALIDATION_FAILED naming the cursor', (_name, cursor) => {
    expectRefused(() => Cursors.tasks.decode(cursor));
    expect(Cursors.tasks.accepts(cursor)).toBe(false);
  });

  it('refuses a cursor whose last character was changed but decodes to the same bytes', () => {
    const c = Cursors.tasks.encode({ offset: 70 });
    // The last character of an unpadded base64url string carries spare low bits when the length is not a multiple of 3.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const tampered = [...alphabet].map((ch) => c.slice(0, -1) + ch).filter((t) => t !== c && Buffer.from(t, 'base64url').equals(Buffer.from(c, 'base64url')));
    expect(tampered.length).toBeGreaterThan(0);
    for (const t of tampered) expectRefused(() => Cursors.tasks.decode(t));
  });

  it('refuses keyset positions of the wrong shape', () => {
    expectRefused(() => Cursors.audit.decode(b64('{"v":1,"k":"audit","p":{"at":"yesterday","id":"0b7c6a44-7d1e-4c39-9a53-1f0d1c2b3a4e"}}')));
    expectRefused(() => Cursors.audit.decode(b64('{"v":1,"k":"audit","p":{"at":"0000-01-01T00:00:00Z","id":"0b7c6a44-7d1e-4c39-9a53-1f0d1c2b3a4e"}}')));
    expectRefused(() => Cursors.audit.decode(b64('{"v":1,"k":"audit","p":{"at":"2025-01-01T00:00:00Z","id":"x"}}')));
    expectRefused(() => Cursors.agents.decode(b64('{"v":1,"k":"agents","p":{"level":-1,"id":"a"}}')));
    expectRefused(() => Cursors.agents.decode(b64('{"v":1,"k":"agents","p":[0,"a"]}')));
    expectRefused(() => Cursors.mcpCatalog.decode(b64(`{"v":1,"k":"mcp.catalog","p":{"name":"${'x'.repeat(300)}"}}`)));
    expectRefused(() => Cursors.workspaces.decode(b64('{"v":1,"k":"workspaces","p":{"id":""}}')));
  });

  it('gives every list its own kind', () => {
    const kinds = Object.values(Cursors).map((c) => c.kind);
    expect(new Set(kinds).size).toBe(kinds.length);
    const c = Cursors.agents.encode({ level: 1, id: 'x' });
    for (const other of Object.values(Cursors)) if (other !== Cursors.agents) expect(other.accepts(c)).toBe(false);
  });

  it('refuses to encode a position its list would refuse', () => {
    expect(() => Cursors.tasks.encode({ offset: -1 })).toThrow();
    expect(() => cursorCodec('long', OffsetPosition.extend({ pad: OffsetPosition.shape.offset })).encode({ offset: 1, pad: 1 })).not.toThrow();
  });

  it('parses the envelope whatever the kind', () => {
    expect(parseCursorEnvelope(Cursors.audit.encode({ at: '2025-11-21T10:00:00.000Z', id: '0b7c6a44-7d1e-4c39-9a53-1f0d1c2b3a4e' })).kind).toBe('audit');
    expectRefused(() => parseCursorEnvelope('garbage'));
  });

  it('names the parameter in the problem', () => {
    expect(invalidCursor().message).toBe('cursor: not a cursor this list issued');
  });

  it('never throws anything but VALIDATION_FAILED, whatever string it is given', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 600 }), fc.base64String({ maxLength: 600 }), fc.json().map(b64), fc.bigInt().map(String)), (s) => {
        for (const codec of Object.values(Cursors)) {
          try {
            codec.decode(s);
          } catch (err) {
            expect((err as ZiggieError).code).toBe('VALIDATION_FAILED');
          }
        }
      }),
      { numRuns: 500, seed: 20_251_121 },
    );
  });

  it('decodes exactly what it encoded, for any offset in range', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: CURSOR_MAX_OFFSET }), (offset) => {
        expect(Cursors.decisions.decode(Cursors.decisions.encode({ offset }))).toEqual({ offset });
      }),
      { numRuns: 200, seed: 1 },
    );
  });
});
