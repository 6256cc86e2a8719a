import { filtersOf, withChanges } from './url-filters';

describe('filters in the address', () => {
  it('reads the named filters, empty when absent, ignoring the others', () => {
    expect(filtersOf(new URLSearchParams('action=POST+%2Fv1%2Fpolicies&cursor=abc&x=1'), ['action', 'actor'])).toEqual({ action: 'POST /v1/policies', actor: '' });
  });

  it('sets and removes filters, and starts the list over on a new filter', () => {
    const next = withChanges(new URLSearchParams('actor=ada&cursor=abc'), { actor: '', outcome: 'denied' });
    expect(next.toString()).toBe('outcome=denied');
  });

  it('keeps the filters when only the page changes', () => {
    expect(withChanges(new URLSearchParams('effect=deny'), { cursor: 'p2' }).toString()).toBe('effect=deny&cursor=p2');
  });

  it('resets only the page of the list whose filter changed', () => {
    const prev = new URLSearchParams('cursor=pol2&decisionCursor=d2&effect=deny');
    expect(withChanges(prev, { effect: 'allow' }, ['decisionCursor']).toString()).toBe('cursor=pol2&effect=allow');
    expect(withChanges(prev, { decisionCursor: 'd3' }, ['decisionCursor']).toString()).toBe('cursor=pol2&decisionCursor=d3&effect=deny');
  });
});
