import { checkQualityGate, checkSchema } from './quality';

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
    expect(checkQualityGate({ rejectPatterns: ['('] }, { text: 'x' })).toMatch(/not a valid regular expression/);
    expect(checkSchema({ type: 'nonsense' }, {})).toMatch(/does not compile/);
  });
});
