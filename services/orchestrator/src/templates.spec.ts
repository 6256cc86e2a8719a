import { outputReferences, resolveInput } from './templates';

describe('step input templates', () => {
  const outputs = new Map<string, unknown>([
    ['brief', { text: 'hello', content: [{ type: 'text', text: 'hello' }] }],
    ['numbers', { text: '42', value: 42 }],
  ]);

  it('interpolates references inside strings and keeps whole references typed', () => {
    const input = { message: 'brief={{steps.brief.output.text}} sum={{ steps.numbers.output.text }}', n: '{{steps.numbers.output.value}}', list: ['{{steps.brief.output.content}}'] };
    expect(resolveInput(input, outputs)).toEqual({
      message: 'brief=hello sum=42',
      n: 42,
      list: [[{ type: 'text', text: 'hello' }]],
    });
  });

  it('fails on a reference to a missing step or path', () => {
    expect(() => resolveInput({ m: '{{steps.ghost.output.text}}' }, outputs)).toThrow(/ghost/);
    expect(() => resolveInput({ m: '{{steps.brief.output.nope}}' }, outputs)).toThrow(/nope/);
  });

  it('reads own output data only, never the prototype chain', () => {
    for (const path of ['__proto__', '__proto__.constructor', 'constructor', 'text.constructor', 'toString', 'text.length.constructor']) {
      expect(() => resolveInput({ m: `{{steps.brief.output.${path}}}` }, outputs)).toThrow(/does not exist/);
    }
    expect(resolveInput({ m: '{{steps.brief.output.content.0.text}}' }, outputs)).toEqual({ m: 'hello' });
  });

  it('lists the steps an input references', () => {
    expect([...new Set(outputReferences({ a: ['{{steps.x.output}} and {{steps.y.output.z}}'] }).map((r) => r.step))].sort()).toEqual(['x', 'y']);
  });
});
