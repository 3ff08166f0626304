import { describe, expect, it } from 'vitest';
import { measureInterleaved, nearestRank } from '../../bench/measure.js';

/** The figures' names in the order their runs of calls came (one run: one warm-up or one slice). */
const runsOf = (calls: string[]) => calls.filter((n, i) => n !== calls[i - 1]);

describe('figures measured in turns', () => {
  it('gives each figure a slice of every round, the first of each round in rotation, and counts its calls after its warm-up', async () => {
    const calls: string[] = [];
    const figure = (name: string) => async () => {
      calls.push(name);
      await new Promise((r) => setImmediate(r));
    };
    const m = await measureInterleaved({ a: figure('a'), b: figure('b'), c: figure('c') }, 90, 3);
    // Warm-ups a, b, c; then the rounds a b c, b c a, c a b.
    expect(runsOf(calls)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'b', 'c', 'a', 'c', 'a', 'b']);
    for (const name of ['a', 'b', 'c']) {
      const first = calls.indexOf(name);
      const warmUp = calls.slice(first).findIndex((n) => n !== name);
      expect(m[name as 'a'].samples).toBe(calls.filter((n) => n === name).length - warmUp);
      expect(m[name as 'a'].ops_per_sec).toBeGreaterThan(0);
    }
  });
});

describe('a quantile by nearest rank', () => {
  const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

  it('is the smallest sample that the fraction asked for does not exceed', () => {
    expect(nearestRank(upTo(100), 0.99)).toBe(99);
    expect(nearestRank(upTo(200), 0.99)).toBe(198);
    expect(nearestRank(upTo(100), 0.5)).toBe(50);
    expect(nearestRank(upTo(101), 0.5)).toBe(51);
    expect(nearestRank(upTo(4), 0.25)).toBe(1);
  });

  it('is the largest sample when there are fewer than 1 / (1 - p) of them, and the smallest at p = 0', () => {
    expect(nearestRank(upTo(50), 0.99)).toBe(50);
    expect(nearestRank(upTo(99), 0.99)).toBe(99);
    expect(nearestRank(upTo(7), 1)).toBe(7);
    expect(nearestRank(upTo(7), 0)).toBe(1);
    expect(nearestRank([], 0.99)).toBe(0);
  });
});
