import { compileUserPattern, globMatches, linearRegExp, userPatternProblem } from './patterns';
import { PlanSchema } from './plan';

describe('user patterns (RE2)', () => {
  it('matches like JavaScript for the common syntax, case-insensitively when asked', () => {
    expect(compileUserPattern('\\bgo+d\\b', { caseInsensitive: true }).firstMatch('a GOOD day')).toBe('GOOD');
    expect(compileUserPattern('[0-9]{3}-\\d{2}').test('id 123-45')).toBe(true);
    expect(compileUserPattern('^x').test('yx')).toBe(false);
  });

  it('is linear in the text for patterns that backtrack exponentially in JavaScript', () => {
    // A backtracking engine explores 2^n paths here (n = 100,000): the test would never end.
    expect(compileUserPattern('(a+)+$').test(`${'a'.repeat(100_000)}!`)).toBe(false);
    expect(compileUserPattern('(x+x+)+y').test('x'.repeat(100_000))).toBe(false);
  });

  it('names what RE2 cannot take: backreferences, lookaround, over-long patterns', () => {
    expect(userPatternProblem('(a)\\1')).toMatch(/escape/);
    expect(userPatternProblem('a(?=b)')).toBeDefined();
    expect(userPatternProblem('(?<!a)b')).toBeDefined();
    expect(userPatternProblem('x'.repeat(501))).toMatch(/longer than 500/);
    expect(userPatternProblem('colou?r')).toBeUndefined();
  });

  it('gives Ajv a RegExp-like engine and refuses flags RE2 does not have', () => {
    expect(linearRegExp('^a+$', 'u').test('aaa')).toBe(true);
    expect(() => linearRegExp('a', 'y')).toThrow(/flag y/);
  });

  it('refuses a plan whose quality gate pattern RE2 cannot run, naming the pattern', () => {
    const plan = (pattern: string) => ({ steps: [{ id: 'a', capability: 'qa', qualityGate: { rejectPatterns: [pattern] } }] });
    expect(PlanSchema.safeParse(plan('(a+)+$')).success).toBe(true);
    const refused = PlanSchema.safeParse(plan('(a)\\1'));
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]?.message).toContain('"(a)\\\\1" is not a supported regular expression');
  });
});

describe('globMatches', () => {
  it('treats * as any run and every other character literally', () => {
    expect(globMatches('a.*', 'a.b')).toBe(true);
    expect(globMatches('a.*', 'ab')).toBe(false);
    expect(globMatches('a+b', 'aab')).toBe(false);
    expect(globMatches('a+b', 'a+b')).toBe(true);
    expect(globMatches('*', '')).toBe(true);
    expect(globMatches('comfyui.*', 'comfyui.')).toBe(true);
    expect(globMatches('*.get-env', 'everything.get-env')).toBe(true);
    expect(globMatches('a*b*c', 'aXbYc')).toBe(true);
    expect(globMatches('a*b*c', 'aXbY')).toBe(false);
    expect(globMatches('exact', 'exact')).toBe(true);
  });

  it('does not blow up on many stars against a long value that almost matches', () => {
    // `.*a.*a.*a…b` as a JavaScript RegExp is polynomial of degree 12 here.
    expect(globMatches(`${'*a'.repeat(12)}*b`, 'a'.repeat(20_000))).toBe(false);
  });
});
