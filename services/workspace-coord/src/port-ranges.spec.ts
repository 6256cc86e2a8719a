import { findOverlap, lowestFreePort, nextFreeBlock, overlaps } from './port-ranges';

describe('port ranges', () => {
  it('overlap includes touching ends, which are inclusive', () => {
    expect(overlaps({ start: 100, end: 199 }, { start: 199, end: 300 })).toBe(true);
    expect(overlaps({ start: 100, end: 199 }, { start: 200, end: 300 })).toBe(false);
    expect(overlaps({ start: 150, end: 160 }, { start: 100, end: 199 })).toBe(true);
    expect(findOverlap({ start: 250, end: 260 }, [{ id: 'a', range: { start: 100, end: 199 } }, { id: 'b', range: { start: 200, end: 299 } }])?.id).toBe('b');
  });

  it('hands out blocks from the base in order, skipping taken and partly taken blocks', () => {
    expect(nextFreeBlock([], 20_000, 100)).toEqual({ start: 20_000, end: 20_099 });
    expect(nextFreeBlock([{ start: 20_000, end: 20_099 }], 20_000, 100)).toEqual({ start: 20_100, end: 20_199 });
    // A custom range straddling two blocks takes both out.
    expect(nextFreeBlock([{ start: 20_050, end: 20_150 }], 20_000, 100)).toEqual({ start: 20_200, end: 20_299 });
    // A freed block is reused before a new one.
    expect(nextFreeBlock([{ start: 20_100, end: 20_199 }], 20_000, 100)).toEqual({ start: 20_000, end: 20_099 });
    // Ranges below the base do not matter.
    expect(nextFreeBlock([{ start: 1000, end: 30_000 }], 40_000, 10)).toEqual({ start: 40_000, end: 40_009 });
  });

  it('gives up when no whole block fits below 65536', () => {
    expect(nextFreeBlock([], 65_500, 100)).toBeUndefined();
    expect(nextFreeBlock([{ start: 65_000, end: 65_099 }], 65_000, 100)).toEqual({ start: 65_100, end: 65_199 });
    expect(nextFreeBlock([{ start: 65_000, end: 65_535 }], 65_000, 100)).toBeUndefined();
  });

  it('picks the lowest free port of a range', () => {
    expect(lowestFreePort({ start: 10, end: 14 }, [])).toBe(10);
    expect(lowestFreePort({ start: 10, end: 14 }, [10, 11, 13])).toBe(12);
    expect(lowestFreePort({ start: 10, end: 14 }, [5, 10, 11, 12, 13])).toBe(14);
    expect(lowestFreePort({ start: 10, end: 14 }, [10, 11, 12, 13, 14])).toBeUndefined();
  });
});
