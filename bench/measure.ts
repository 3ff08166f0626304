import { performance } from 'node:perf_hooks';

export interface Measurement {
  ops_per_sec: number;
  p50_ms: number;
  p99_ms: number;
  samples: number;
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits));

/**
 * The `p` quantile of ascending `sorted` by nearest rank: the smallest sample that at least a
 * fraction `p` of the samples do not exceed. Of 100 samples the p99 is the 99th, not the largest;
 * of fewer than 100 it is the largest, so a p99 worth the name needs 100 samples or more.
 */
export function nearestRank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length))) - 1]!;
}

function summarize(times: number[], elapsedMs: number): Measurement {
  times.sort((a, b) => a - b);
  const pct = (p: number) => nearestRank(times, p);
  return {
    ops_per_sec: round(times.length / (elapsedMs / 1000), 1),
    p50_ms: round(pct(0.5), 4),
    p99_ms: round(pct(0.99), 4),
    samples: times.length,
  };
}

/**
 * Runs `fn` one call at a time for about `budgetMs` (after a short warm-up) and reports
 * throughput and latency percentiles. Bounded in time whatever the machine does.
 */
export async function measure(fn: () => unknown | Promise<unknown>, budgetMs = 1_500): Promise<Measurement> {
  const warmUntil = performance.now() + Math.min(200, budgetMs / 5);
  while (performance.now() < warmUntil) await fn();
  const times: number[] = [];
  const start = performance.now();
  const end = start + budgetMs;
  while (performance.now() < end && times.length < 1_000_000) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return summarize(times, performance.now() - start);
}

/**
 * Runs each of `figures` one call at a time, in turns: `slices` rounds, each giving every figure
 * `budgetMs / slices` in a rotating order, after a short warm-up of each. Figures compared with
 * one another (ours and its raw limit) so see the same machine: measured one after the other,
 * the first pays for what ran before it (collection of the set-up's garbage, PostgreSQL's
 * background work) and the ratio moves with the order. Throughput is each figure's calls over
 * the time it ran.
 */
export async function measureInterleaved<K extends string>(
  figures: Record<K, () => unknown | Promise<unknown>>,
  budgetMs = 1_500,
  slices = 6,
): Promise<Record<K, Measurement>> {
  const names = Object.keys(figures) as K[];
  const times = new Map<K, number[]>(names.map((n) => [n, []]));
  const spent = new Map<K, number>(names.map((n) => [n, 0]));
  for (const n of names) {
    const warmUntil = performance.now() + Math.min(200, budgetMs / 5);
    do await figures[n]();
    while (performance.now() < warmUntil);
  }
  const slice = budgetMs / slices;
  for (let round = 0; round < slices; round++) {
    for (let i = 0; i < names.length; i++) {
      const n = names[(round + i) % names.length]!;
      const mine = times.get(n)!;
      const start = performance.now();
      const end = start + slice;
      // At least one call per slice, whatever the machine did meanwhile.
      do {
        const t0 = performance.now();
        await figures[n]();
        mine.push(performance.now() - t0);
      } while (performance.now() < end && mine.length < 1_000_000);
      spent.set(n, spent.get(n)! + performance.now() - start);
    }
  }
  return Object.fromEntries(names.map((n) => [n, summarize(times.get(n)!, spent.get(n)!)])) as Record<
    K,
    Measurement
  >;
}

/**
 * Times `run(input)` for `count` inputs made by `prepare()` beforehand, one at a time, so
 * set-up cost (creating a job to approve, say) never enters the figure.
 */
export async function measurePrepared<T>(
  prepare: () => Promise<T>,
  run: (input: T) => Promise<unknown>,
  count: number,
): Promise<Measurement> {
  const inputs: T[] = [];
  for (let i = 0; i < count; i++) inputs.push(await prepare());
  const times: number[] = [];
  const start = performance.now();
  for (const input of inputs) {
    const t0 = performance.now();
    await run(input);
    times.push(performance.now() - t0);
  }
  return summarize(times, performance.now() - start);
}

/**
 * Runs `fn` from `concurrency` loops at once for about `budgetMs` (after a short warm-up): the
 * throughput when several callers wait at the same time, with each call's latency.
 */
export async function measureConcurrent(
  fn: () => Promise<unknown>,
  concurrency: number,
  budgetMs = 1_500,
): Promise<Measurement & { concurrency: number }> {
  const warmUntil = performance.now() + Math.min(200, budgetMs / 5);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < warmUntil) await fn();
    }),
  );
  const times: number[] = [];
  const start = performance.now();
  const end = start + budgetMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end && times.length < 1_000_000) {
        const t0 = performance.now();
        await fn();
        times.push(performance.now() - t0);
      }
    }),
  );
  return { ...summarize(times, performance.now() - start), concurrency };
}
