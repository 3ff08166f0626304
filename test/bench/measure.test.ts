import { describe, expect, it } from 'vitest';
import { measureInterleaved } from '../../bench/measure.js';

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
