/**
 * The goals of issue 13's table, evaluated on one `npm run bench` JSON document. Pure: no
 * timing, no I/O, so it is tested on fixed documents.
 *
 * The issue's table was measured on PostgreSQL: a row counts when its figure was measured on
 * PostgreSQL, except the rows that name PGlite (RSS idle, warm start). The same figure measured
 * on PGlite is shown as `info` (beside the goal, not counted).
 */

export type GoalStatus = 'passed' | 'missed' | 'not measured' | 'info' | 'not a bench figure';
export type DatabaseKind = 'postgres' | 'pglite';

export interface GoalResult {
  goal: string;
  database: DatabaseKind | null;
  status: GoalStatus;
  /** The figure compared with `limit` (a ratio for ratio goals), or null when not measured. */
  value: number | null;
  comparison: '<=' | '>=';
  limit: number;
  unit: string;
  /** value / limit: at most 1 passes a `<=` goal, at least 1 passes a `>=` goal. */
  ratio_to_goal: number | null;
  detail: string;
  /** The least work the goal's operation must do, measured in the same run; null when none is. */
  floor: Floor | null;
}

/**
 * A raw limit measured in the same run, in the goal's own unit, that no implementation of the
 * goal's operation can beat on this machine: the same round trips with nothing of ours between
 * them. When the floor itself misses the goal, no change to this code can meet it here.
 */
export interface Floor {
  value: number;
  what: string;
  meets_goal: boolean;
}

type Json = Record<string, unknown>;

/** The value at `path` (dot-separated own keys of plain objects) in `doc`, or undefined. */
function valueAt(doc: unknown, path: string): unknown {
  let v: unknown = doc;
  for (const k of path.split('.')) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, k)) return undefined;
    v = (v as Json)[k];
  }
  return v;
}

/** The number at `path` in `doc`, or null when absent or not a finite number. */
export function numberAt(doc: unknown, path: string): number | null {
  const v = valueAt(doc, path);
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function stringAt(doc: unknown, path: string): string | null {
  const v = valueAt(doc, path);
  return typeof v === 'string' ? v : null;
}

/** `postgres…` or `pglite…` as the document labels a database; null for anything else. */
export function databaseKind(label: string | null): DatabaseKind | null {
  if (label === null) return null;
  if (label.startsWith('postgres')) return 'postgres';
  if (label.startsWith('pglite')) return 'pglite';
  return null;
}

const r3 = (n: number) => Number(n.toPrecision(3));

interface Spec {
  goal: string;
  database: DatabaseKind | null;
  /** Whether the table counts this row on this database. */
  counts: boolean;
  value: number | null;
  comparison: '<=' | '>=';
  limit: number;
  unit: string;
  detail: string;
  /** The floor's figure, in the goal's unit (null when not in this run), and what it is. */
  floor?: { value: number | null; what: string };
}

const meets = (value: number, comparison: '<=' | '>=', limit: number) =>
  comparison === '<=' ? value <= limit : value >= limit;

function evaluate(s: Spec): GoalResult {
  const ratio = s.value === null ? null : r3(s.value / s.limit);
  const met = s.value !== null && meets(s.value, s.comparison, s.limit);
  const status: GoalStatus =
    s.value === null ? 'not measured' : !s.counts ? 'info' : met ? 'passed' : 'missed';
  return {
    goal: s.goal,
    database: s.database,
    status,
    value: s.value === null ? null : r3(s.value),
    comparison: s.comparison,
    limit: s.limit,
    unit: s.unit,
    ratio_to_goal: ratio,
    detail: s.detail,
    floor:
      s.floor === undefined || s.floor.value === null
        ? null
        : {
            value: r3(s.floor.value),
            what: s.floor.what,
            meets_goal: meets(s.floor.value, s.comparison, s.limit),
          },
  };
}

const divide = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : a / b);

/** Every goal of issue 13's table, evaluated on a bench document. */
export function evaluateGoals(doc: unknown): GoalResult[] {
  const out: GoalResult[] = [];
  const mainDb = databaseKind(stringAt(doc, 'database'));
  const onPostgres = (db: DatabaseKind | null) => db === 'postgres';

  // Deciding APPROVE → token committed (engine), p50 ≤ 3× the raw single-row commit p50.
  {
    const ours = numberAt(doc, 'tokens.approval_to_committed_token.ours.p50_ms');
    const raw = numberAt(doc, 'tokens.approval_to_committed_token.raw_single_row_commit.p50_ms');
    const floor = numberAt(doc, 'tokens.approval_to_committed_token.raw_decision_floor.p50_ms');
    out.push(
      evaluate({
        goal: 'deciding APPROVE → token committed (engine), p50, × raw single-row commit p50',
        database: divide(ours, raw) === null ? null : mainDb,
        counts: onPostgres(mainDb),
        value: divide(ours, raw),
        comparison: '<=',
        limit: 3,
        unit: '× raw commit',
        detail: ours === null || raw === null ? 'not in this run' : `${ours} ms vs raw commit ${raw} ms`,
        floor: {
          value: divide(floor, raw),
          what: `raw decision-shaped transaction p50 ${floor ?? '?'} ms: lock, read, sign, one write of four rows, commit`,
        },
      }),
    );
  }

  // APPROVE posted → "approved" reply seen by a person's client, p99 ≤ 25 ms at 1 and 50 jobs.
  for (const key of ['bot', 'bot_pglite']) {
    const db = databaseKind(stringAt(doc, `${key}.database`));
    for (const level of [1, 10, 50]) {
      const base = `${key}.approval_to_token_and_reply.concurrent_${level}`;
      const p99 = numberAt(doc, `${base}.to_reply_seen.p99_ms`);
      if (p99 === null && key === 'bot_pglite') continue;
      const raw = numberAt(doc, `${base}.raw_sandbox_post_to_client.p99_ms`);
      const echo = numberAt(doc, `${base}.raw_echo_reply_seen.p99_ms`);
      out.push(
        evaluate({
          goal: `APPROVE posted → "approved" reply seen by a person's WebSocket client, ${level} job${level === 1 ? '' : 's'} at once, p99`,
          database: p99 === null ? null : db,
          counts: onPostgres(db) && level !== 10,
          value: p99,
          comparison: '<=',
          limit: 25,
          unit: 'ms',
          detail: p99 === null ? 'not in this run' : `raw post → client p99 ${raw ?? '?'} ms in the same run`,
          floor: {
            value: p99 === null ? null : echo,
            what: 'a post answered in its thread by a client that answers on sight (no database), p99 at this level',
          },
        }),
      );
    }
  }

  // Token introspection: in process ≥ 90%, over HTTP ≥ 50% of raw jose EdDSA verify.
  {
    const ours = numberAt(doc, 'tokens.cst_introspect.ours.ops_per_sec');
    const raw = numberAt(doc, 'tokens.cst_introspect.raw_jose_eddsa_verify.ops_per_sec');
    const floor = numberAt(doc, 'tokens.cst_introspect.raw_verify_with_one_read_overlapped.ops_per_sec');
    out.push(
      evaluate({
        goal: 'token introspection in process, share of raw jose EdDSA verify rate',
        database: divide(ours, raw) === null ? null : mainDb,
        counts: onPostgres(mainDb),
        value: divide(ours, raw),
        comparison: '>=',
        limit: 0.9,
        unit: 'of raw verify',
        detail:
          ours === null || raw === null
            ? 'not in this run'
            : `${ours}/s vs raw verify ${raw}/s; raw verify with one database read overlapped ${floor ?? '?'}/s`,
        floor: {
          value: divide(floor, raw),
          what: 'raw verify with one primary-key read overlapped (revocation through any replica needs a read)',
        },
      }),
    );
  }
  {
    const ours = numberAt(doc, 'tokens.cst_introspect_http.ours.ops_per_sec');
    const raw = numberAt(doc, 'tokens.cst_introspect_http.raw_jose_eddsa_verify.ops_per_sec');
    const bare = numberAt(doc, 'tokens.cst_introspect_http.raw_bare_node_http_constant.ops_per_sec');
    const eight = numberAt(doc, 'tokens.cst_introspect_http.ours_8_connections.ops_per_sec');
    const floor = numberAt(
      doc,
      'tokens.cst_introspect_http.raw_bare_node_http_verify_with_one_read.ops_per_sec',
    );
    out.push(
      evaluate({
        goal: 'token introspection over HTTP (one connection, one request at a time), share of raw jose EdDSA verify rate',
        database: divide(ours, raw) === null ? null : mainDb,
        counts: onPostgres(mainDb),
        value: divide(ours, raw),
        comparison: '>=',
        limit: 0.5,
        unit: 'of raw verify',
        detail:
          ours === null || raw === null
            ? 'not in this run'
            : `${ours}/s vs raw verify ${raw}/s; bare HTTP route ${bare ?? '?'}/s; ours on 8 connections ${eight ?? '?'}/s`,
        floor: {
          value: divide(floor, raw),
          what: `bare node:http route doing raw verify with one read overlapped, ${floor ?? '?'}/s`,
        },
      }),
    );
  }

  // The server process: RSS idle, RSS with 10,000 open jobs, warm start.
  const serve: [DatabaseKind, number, number][] = [
    ['postgres', 150, 1_000],
    ['pglite', 250, 2_000],
  ];
  for (const [db, rssLimit] of serve) {
    const idle = numberAt(doc, `serve.${db}.rss_idle.vm_rss_mb`);
    const hwm = numberAt(doc, `serve.${db}.rss_idle.vm_hwm_mb`);
    out.push(
      evaluate({
        goal: 'process RSS idle',
        database: db,
        counts: true,
        value: idle,
        comparison: '<=',
        limit: rssLimit,
        unit: 'MiB',
        detail: idle === null ? 'not in this run' : `peak (VmHWM) ${hwm ?? '?'} MiB`,
      }),
    );
  }
  for (const [db] of serve) {
    const rss = numberAt(doc, `serve.${db}.rss_with_open_jobs.vm_rss_mb`);
    const jobs = numberAt(doc, `serve.${db}.rss_with_open_jobs.jobs`);
    out.push(
      evaluate({
        goal: 'process RSS with 10,000 open jobs',
        database: db,
        counts: onPostgres(db) && jobs !== null && jobs >= 10_000,
        value: rss,
        comparison: '<=',
        limit: 300,
        unit: 'MiB',
        detail: rss === null ? 'not in this run' : `${jobs ?? '?'} open jobs`,
      }),
    );
  }
  for (const [db, , startLimit] of serve) {
    const p50 = numberAt(doc, `serve.${db}.warm_start_to_healthz.p50_ms`);
    const bare = numberAt(doc, 'serve.raw_bare_node_http.warm_start_to_healthz.p50_ms');
    out.push(
      evaluate({
        goal: 'warm start to /healthz (server only), p50',
        database: db,
        counts: true,
        value: p50,
        comparison: '<=',
        limit: startLimit,
        unit: 'ms',
        detail: p50 === null ? 'not in this run' : `bare node -e HTTP server p50 ${bare ?? '?'} ms`,
        floor: { value: p50 === null ? null : bare, what: 'a bare `node -e` HTTP server, p50' },
      }),
    );
  }

  out.push({
    goal: '`npm test` on 2 cores ≤ 6 min, no failure at load 10',
    database: null,
    status: 'not a bench figure',
    value: null,
    comparison: '<=',
    limit: 6,
    unit: 'min',
    ratio_to_goal: null,
    detail: 'not measured by the bench: time `npm test` itself',
    floor: null,
  });
  return out;
}

/** The exit code of `--check`: 1 when a counted goal is missed, 2 when none was measured, else 0. */
export function checkExitCode(goals: GoalResult[]): 0 | 1 | 2 {
  if (goals.some((g) => g.status === 'missed')) return 1;
  if (!goals.some((g) => g.status === 'passed')) return 2;
  return 0;
}

const LABEL: Record<GoalStatus, string> = {
  passed: 'PASS',
  missed: 'MISS',
  'not measured': 'n/a ',
  info: 'info',
  'not a bench figure': '--  ',
};

/** One line per goal and a closing count, for people reading `--check`. */
export function formatGoals(goals: GoalResult[]): string {
  const lines = goals.map((g) => {
    const where = g.database ? ` [${g.database}]` : '';
    const value =
      g.value === null
        ? g.status
        : `${g.value} ${g.unit} (goal ${g.comparison} ${g.limit} ${g.unit}; ${g.ratio_to_goal}× the goal)`;
    const floor =
      g.floor === null
        ? ''
        : `; floor ${g.floor.value} ${g.unit}, ${g.floor.what}${g.floor.meets_goal ? '' : ' (the floor itself misses the goal)'}`;
    return `${LABEL[g.status]} ${g.goal}${where}: ${value}; ${g.detail}${floor}`;
  });
  const count = (s: GoalStatus) => goals.filter((g) => g.status === s).length;
  const beyond = goals.filter((g) => g.status === 'missed' && g.floor !== null && !g.floor.meets_goal).length;
  lines.push(
    `${count('passed')} passed, ${count('missed')} missed (${beyond} of them missed by their floor too), ` +
      `${count('not measured')} not measured, ` +
      `${count('info')} shown for information (beside a goal the issue sets for another database, job count or level)`,
  );
  return `${lines.join('\n')}\n`;
}
