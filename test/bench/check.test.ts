import { describe, expect, it } from 'vitest';
import { ArgsError, parseArgs, SECTIONS } from '../../bench/args.js';
import { checkExitCode, evaluateGoals, formatGoals, type GoalResult, numberAt } from '../../bench/check.js';

/** A bench document as `npm run bench` prints it, with only the figures the goals read. */
function document(over: { database?: string; engineP50?: number; reply?: [number, number, number] } = {}) {
  const [r1, r10, r50] = over.reply ?? [20, 22, 24];
  const level = (p99: number) => ({
    to_committed_token: { p50_ms: 3, p99_ms: 5, max_ms: 5, samples: 30 },
    to_reply_seen: { p50_ms: p99 / 2, p99_ms: p99, max_ms: p99, samples: 30 },
    raw_sandbox_post_to_client: { p50_ms: 1, p99_ms: 2.5, max_ms: 3, samples: 30 },
    raw_echo_reply_seen: { p50_ms: 2, p99_ms: 5, max_ms: 6, samples: 30 },
  });
  return {
    bench: 'claw-approvals core',
    database: over.database ?? 'postgres (DATABASE_URL)',
    tokens: {
      cst_introspect: {
        ours: { ops_per_sec: 1200, p50_ms: 0.8, p99_ms: 1, samples: 100 },
        raw_jose_eddsa_verify: { ops_per_sec: 1250, p50_ms: 0.8, p99_ms: 1, samples: 100 },
        raw_verify_with_one_read_overlapped: { ops_per_sec: 1000, p50_ms: 1, p99_ms: 1.2, samples: 100 },
      },
      cst_introspect_http: {
        ours: { ops_per_sec: 700, p50_ms: 1.4, p99_ms: 2, samples: 100 },
        raw_bare_node_http_constant: { ops_per_sec: 5000, p50_ms: 0.2, p99_ms: 0.3, samples: 100 },
        raw_bare_node_http_verify_with_one_read: { ops_per_sec: 900, p50_ms: 1.1, p99_ms: 1.3, samples: 100 },
        raw_jose_eddsa_verify: { ops_per_sec: 1250, p50_ms: 0.8, p99_ms: 1, samples: 100 },
      },
      approval_to_committed_token: {
        ours: { ops_per_sec: 1000, p50_ms: over.engineP50 ?? 0.6, p99_ms: 1, samples: 100 },
        raw_single_row_commit: { ops_per_sec: 5000, p50_ms: 0.22, p99_ms: 0.3, samples: 100 },
        raw_decision_floor: { ops_per_sec: 2000, p50_ms: 0.44, p99_ms: 0.6, samples: 100 },
      },
    },
    bot: {
      database: over.database ?? 'postgres (DATABASE_URL)',
      approval_to_token_and_reply: {
        concurrent_1: level(r1),
        concurrent_10: level(r10),
        concurrent_50: level(r50),
      },
    },
    serve: {
      raw_bare_node_http: { warm_start_to_healthz: { p50_ms: 60 } },
      postgres: {
        warm_start_to_healthz: { p50_ms: 900 },
        rss_idle: { vm_rss_mb: 120, vm_hwm_mb: 130 },
        rss_with_open_jobs: { jobs: 10_000, vm_rss_mb: 200, vm_hwm_mb: 210 },
      },
      pglite: {
        warm_start_to_healthz: { p50_ms: 1900 },
        rss_idle: { vm_rss_mb: 240, vm_hwm_mb: 300 },
        rss_with_open_jobs: { jobs: 10_000, vm_rss_mb: 290, vm_hwm_mb: 300 },
      },
    },
  };
}

const find = (goals: GoalResult[], text: string, database: string | null = 'postgres') => {
  const g = goals.find((x) => x.goal.includes(text) && x.database === database);
  if (!g) throw new Error(`no goal "${text}" on ${database}`);
  return g;
};

describe('evaluateGoals', () => {
  it('passes every counted goal of a document that meets them, and exits 0', () => {
    const goals = evaluateGoals(document());
    expect(goals.filter((g) => g.status === 'missed')).toEqual([]);
    expect(goals.filter((g) => g.status === 'passed')).toHaveLength(10);
    expect(checkExitCode(goals)).toBe(0);
    // Shown without counting: 10 jobs (the issue sets goals at 1 and at 50), and open jobs on
    // PGlite (the row does not name PGlite).
    expect(goals.filter((g) => g.status === 'info').map((g) => [g.goal, g.database])).toEqual([
      [expect.stringContaining('10 jobs at once'), 'postgres'],
      ['process RSS with 10,000 open jobs', 'pglite'],
    ]);
  });

  it('reports the measured ratio to the raw limit and to the goal', () => {
    const goals = evaluateGoals(document({ engineP50: 0.88 }));
    const engine = find(goals, 'token committed (engine)');
    expect(engine).toMatchObject({ status: 'missed', value: 4, limit: 3, comparison: '<=' });
    expect(engine.ratio_to_goal).toBeCloseTo(4 / 3, 2);
    expect(engine.detail).toBe('0.88 ms vs raw commit 0.22 ms');
    const http = find(goals, 'over HTTP');
    expect(http).toMatchObject({ status: 'passed', value: 0.56, limit: 0.5, comparison: '>=' });
    const inProcess = find(goals, 'in process');
    expect(inProcess).toMatchObject({ status: 'passed', value: 0.96 });
    expect(checkExitCode(goals)).toBe(1);
  });

  it('misses the reply goal at 50 jobs even when 1 job meets it, and does not count 10 jobs', () => {
    const goals = evaluateGoals(document({ reply: [10, 900, 26] }));
    expect(find(goals, '1 job at once').status).toBe('passed');
    expect(find(goals, '10 jobs at once')).toMatchObject({ status: 'info', value: 900 });
    expect(find(goals, '50 jobs at once')).toMatchObject({ status: 'missed', value: 26 });
    expect(checkExitCode(goals)).toBe(1);
  });

  it('holds each database to its own memory and start-up goal', () => {
    const doc = document();
    doc.serve.pglite.rss_idle.vm_rss_mb = 251;
    doc.serve.postgres.warm_start_to_healthz.p50_ms = 1001;
    const goals = evaluateGoals(doc);
    expect(find(goals, 'RSS idle', 'pglite')).toMatchObject({ status: 'missed', limit: 250 });
    expect(find(goals, 'RSS idle', 'postgres')).toMatchObject({ status: 'passed', limit: 150 });
    expect(find(goals, 'warm start', 'postgres')).toMatchObject({ status: 'missed', limit: 1000 });
    expect(find(goals, 'warm start', 'pglite')).toMatchObject({ status: 'passed', limit: 2000 });
  });

  it('shows figures measured on PGlite beside goals set on PostgreSQL without counting them', () => {
    const doc = document({ database: 'pglite (temp data dir)', engineP50: 50, reply: [500, 500, 500] });
    const goals = evaluateGoals(doc);
    expect(find(goals, 'token committed (engine)', 'pglite').status).toBe('info');
    expect(find(goals, '50 jobs at once', 'pglite').status).toBe('info');
    expect(find(goals, 'in process', 'pglite').status).toBe('info');
    expect(goals.some((g) => g.status === 'missed')).toBe(false);
  });

  it('does not count RSS with open jobs when fewer than 10,000 were opened', () => {
    const doc = document();
    doc.serve.postgres.rss_with_open_jobs.jobs = 300;
    expect(find(evaluateGoals(doc), 'RSS with 10,000 open jobs')).toMatchObject({
      status: 'info',
      value: 200,
    });
  });

  it('treats absent, non-numeric and non-finite figures as not measured, never as passed', () => {
    const doc = document() as Record<string, unknown> & ReturnType<typeof document>;
    (doc.tokens.approval_to_committed_token.raw_single_row_commit as { p50_ms: unknown }).p50_ms = 0;
    (doc.tokens.cst_introspect.ours as { ops_per_sec: unknown }).ops_per_sec = '1200';
    (doc.serve.postgres.rss_idle as { vm_rss_mb: unknown }).vm_rss_mb = null;
    (doc.serve.pglite.rss_idle as { vm_rss_mb: unknown }).vm_rss_mb = Number.NaN;
    delete (doc as { bot?: unknown }).bot;
    const goals = evaluateGoals(doc);
    expect(find(goals, 'token committed (engine)', null).status).toBe('not measured');
    expect(find(goals, 'in process', null).status).toBe('not measured');
    expect(find(goals, 'RSS idle', 'postgres').status).toBe('not measured');
    expect(find(goals, 'RSS idle', 'pglite').status).toBe('not measured');
    expect(goals.filter((g) => g.goal.includes('reply seen')).map((g) => g.status)).toEqual([
      'not measured',
      'not measured',
      'not measured',
    ]);
  });

  it('exits 2 when no goal was measured (a document of another shape, or an empty run)', () => {
    for (const doc of [{}, null, [], 'text', { database: 'postgres', tokens: { cst_introspect: 5 } }]) {
      const goals = evaluateGoals(doc);
      expect(goals.some((g) => g.status === 'passed' || g.status === 'missed')).toBe(false);
      expect(checkExitCode(goals)).toBe(2);
    }
  });

  it("sets each figure's floor beside it, in the goal's unit, and says whether the floor itself meets the goal", () => {
    const goals = evaluateGoals(document({ engineP50: 0.88, reply: [10, 22, 40] }));
    expect(find(goals, 'token committed (engine)').floor).toMatchObject({ value: 2, meets_goal: true });
    // In process: the floor is 1000/1250 of raw verify, below the 90% asked.
    expect(find(goals, 'in process').floor).toMatchObject({ value: 0.8, meets_goal: false });
    expect(find(goals, 'over HTTP').floor).toMatchObject({ value: 0.72, meets_goal: true });
    expect(find(goals, '50 jobs at once').floor).toMatchObject({ value: 5, meets_goal: true });
    expect(find(goals, 'warm start', 'postgres').floor).toMatchObject({ value: 60, meets_goal: true });
    expect(find(goals, 'RSS idle').floor).toBeNull();

    const doc = document();
    doc.bot.approval_to_token_and_reply.concurrent_50.raw_echo_reply_seen.p99_ms = 30;
    delete (doc.tokens.approval_to_committed_token as { raw_decision_floor?: unknown }).raw_decision_floor;
    const without = evaluateGoals(doc);
    expect(find(without, '50 jobs at once').floor).toMatchObject({ value: 30, meets_goal: false });
    expect(find(without, 'token committed (engine)').floor).toBeNull();
    // A floor never changes a goal's status: a floor that misses is a fact about the machine.
    expect(find(without, '50 jobs at once').status).toBe('passed');
  });

  it('names the test-suite goal as not a bench figure', () => {
    const suite = evaluateGoals(document()).find((g) => g.goal.includes('npm test'));
    expect(suite).toMatchObject({ status: 'not a bench figure', value: null });
  });

  it('prints one line per goal with its status, value and ratio, and a count', () => {
    const text = formatGoals(evaluateGoals(document({ engineP50: 0.88 })));
    expect(text).toContain(
      'MISS deciding APPROVE → token committed (engine), p50, × raw single-row commit p50 [postgres]: 4 × raw commit (goal <= 3 × raw commit; 1.33× the goal)',
    );
    expect(text).toMatch(/^PASS process RSS idle \[pglite\]: 240 MiB \(goal <= 250 MiB; 0\.96× the goal\)/m);
    expect(text).toContain(
      '; floor 2 × raw commit, raw decision-shaped transaction p50 0.44 ms: lock, read, sign, one write of four rows, commit\n',
    );
    expect(text).toMatch(
      /^PASS token introspection in process.*; floor 0\.8 of raw verify, .* \(the floor itself misses the goal\)$/m,
    );
    expect(text.trim().split('\n').at(-1)).toBe(
      '9 passed, 1 missed (0 of them missed by their floor too), 0 not measured, 2 shown for information (beside a goal the issue sets for another database, job count or level)',
    );
    const beyond = document({ engineP50: 0.88 });
    beyond.tokens.cst_introspect.ours.ops_per_sec = 900;
    expect(formatGoals(evaluateGoals(beyond)).trim().split('\n').at(-1)).toMatch(
      /^8 passed, 2 missed \(1 of them missed by their floor too\),/,
    );
  });
});

describe('numberAt', () => {
  it('reads nested numbers and nothing else', () => {
    expect(numberAt({ a: { b: 2 } }, 'a.b')).toBe(2);
    expect(numberAt({ a: { b: '2' } }, 'a.b')).toBeNull();
    expect(numberAt({ a: [1] }, 'a.0')).toBeNull();
    expect(numberAt({ a: { b: Infinity } }, 'a.b')).toBeNull();
    expect(numberAt(Object.create({ a: 1 }) as unknown, 'a')).toBeNull();
    expect(numberAt({ a: 1 }, 'a.toFixed')).toBeNull();
  });
});

describe('parseArgs', () => {
  it('defaults to every section and the issue levels', () => {
    const a = parseArgs([]);
    expect([...a.only]).toEqual([...SECTIONS]);
    expect(a).toMatchObject({ levels: [1, 10, 50], check: false, checkFile: null, openJobs: 10_000 });
  });

  it('takes --only, --check and numbers', () => {
    const a = parseArgs(['--only=bot,serve', '--check', '--levels=1,50', '--open-jobs=0', '--budget-ms=200']);
    expect([...a.only]).toEqual(['bot', 'serve']);
    expect(a).toMatchObject({ check: true, levels: [1, 50], openJobs: 0, budgetMs: 200 });
  });

  it.each([
    ['--only=bot,typo', /unknown section typo/],
    ['--only=', /needs a value/],
    ['--budget-ms=0', /at least 1/],
    ['--budget-ms=1e3', /whole number/],
    ['--samples=-5', /whole number/],
    ['--levels=1,,50', /whole number/],
    ['--levels=1000', /at most 500/],
    ['--check=yes', /takes no value/],
    ['--chek', /unknown option --chek/],
    ['bench', /unknown argument/],
  ])('refuses %s', (arg, message) => {
    expect(() => parseArgs([arg])).toThrow(ArgsError);
    expect(() => parseArgs([arg])).toThrow(message);
  });
});
