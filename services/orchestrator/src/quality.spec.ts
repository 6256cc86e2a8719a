import { checkSchema } from './json-schema';
import { checkQualityGate } from './quality';

describe('quality gates', () => {
  it('passes without a gate and with a satisfied one', () => {
    expect(checkQualityGate(undefined, { text: 'x' })).toBeUndefined();
    expect(checkQualityGate({ outputSchema: { type: 'object', required: ['text'] }, minTextLength: 1 }, { text: 'fine' })).toBeUndefined();
  });

  it('names the schema mismatch', () => {
    expect(checkQualityGate({ outputSchema: { type: 'object', required: ['image'] } }, { text: 'x' })).toMatch(/must have required property 'image'/);
  });

  it('rejects content matching a pattern, case-insensitively, quoting what matched', () => {
    expect(checkQualityGate({ rejectPatterns: ['\\bgore\\b'] }, { text: 'Some GORE here' })).toMatch(/rejected content "GORE"/);
    expect(checkQualityGate({ rejectPatterns: ['\\bgore\\b'] }, { text: 'gorgeous' })).toBeUndefined();
  });

  it('checks the JSON of outputs without text, and minimum length', () => {
    expect(checkQualityGate({ rejectPatterns: ['secret'] }, { data: { k: 'secret' } })).toMatch(/secret/);
    expect(checkQualityGate({ minTextLength: 10 }, { text: 'short' })).toMatch(/5 characters.*at least 10/);
  });

  it('reports an invalid pattern or schema instead of throwing', () => {
    expect(checkQualityGate({ rejectPatterns: ['('] }, { text: 'x' })).toMatch(/not a supported regular expression/);
    expect(checkSchema({ type: 'nonsense' }, {})).toMatch(/does not compile/);
  });

  it('runs patterns in linear time: a pattern that backtracks exponentially in JavaScript returns at once', () => {
    // With a backtracking engine this takes longer than the universe has (2^50000 paths); RE2 scans once.
    const text = `${'a'.repeat(50_000)}!`;
    expect(checkQualityGate({ rejectPatterns: ['(a+)+$'] }, { text })).toBeUndefined();
    expect(checkQualityGate({ rejectPatterns: ['(a|aa)+$'] }, { text: `${'a'.repeat(50_000)}` })).toMatch(/rejected content/);
  });

  it('refuses JavaScript-only syntax (backreferences, lookaround) instead of running it', () => {
    expect(checkQualityGate({ rejectPatterns: ['(a)\\1'] }, { text: 'aa' })).toMatch(/not a supported regular expression/);
    expect(checkQualityGate({ rejectPatterns: ['(?=a)'] }, { text: 'a' })).toMatch(/not a supported regular expression/);
  });

  it('runs JSON Schema patterns of a gate on RE2 too', () => {
    const schema = { type: 'object', properties: { text: { type: 'string', pattern: '^(a+)+$' } } };
    expect(checkSchema(schema, { text: `${'a'.repeat(50_000)}!` })).toMatch(/must match pattern/);
    expect(checkSchema({ type: 'string', pattern: '(?<=x)y' }, 'y')).toMatch(/does not compile/);
  });
});
