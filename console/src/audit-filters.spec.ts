import { instantOfLocal, localOfInstant } from './audit-filters';

describe('the audit time range', () => {
  it('turns a local date and time into an instant and back, in any time zone', () => {
    const local = '2026-03-29T02:30:15';
    const instant = instantOfLocal(local);
    expect(instant).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$/);
    expect(Date.parse(instant)).toBe(new Date(2026, 2, 29, 2, 30, 15).getTime());
    expect(localOfInstant(new Date(2026, 11, 7, 9, 5, 3).toISOString())).toBe('2026-12-07T09:05:03');
    expect(localOfInstant(instantOfLocal('2026-12-07T09:05:03'))).toBe('2026-12-07T09:05:03');
  });

  it('leaves an empty or unreadable value out instead of sending a wrong instant', () => {
    expect(instantOfLocal('')).toBe('');
    expect(instantOfLocal('yesterday')).toBe('');
    expect(localOfInstant('')).toBe('');
    expect(localOfInstant('not a date')).toBe('');
  });
});
