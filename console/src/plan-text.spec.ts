import { lineOfStep } from './plan-text';

describe('lineOfStep', () => {
  const text = JSON.stringify({ steps: [{ id: 'a', capability: 'qa' }, { id: 'b.c', dependsOn: ['a'] }] }, null, 2);

  it('finds the line where the step is defined, not where it is named as a dependency', () => {
    expect(lineOfStep(text, 'a')).toBe(4);
    expect(lineOfStep(text, 'b.c')).toBe(8);
  });

  it('matches the id exactly: a regular expression character in it is literal', () => {
    expect(lineOfStep(text, 'bxc')).toBeNull();
    expect(lineOfStep(text, 'nope')).toBeNull();
  });
});
