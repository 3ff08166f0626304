import { createHash } from 'node:crypto';

/**
 * Server-side prepared statements for what this process runs again and again.
 *
 * PostgreSQL parses, analyses and plans every statement it is sent without a name, and on the
 * deciding path that is most of the work: the job's state read and the write of a decision
 * cost about 0.7 ms each to plan against 0.2 to 0.4 ms to run (measured with
 * log_min_duration_statement on the bench). A statement sent with a name is planned once per
 * connection, and afterwards only its parameters travel.
 *
 * So, like pgJDBC's prepareThreshold, a DML statement this process has sent `THRESHOLD` times
 * is sent named from then on (the name is a digest of its text, so a name always means one
 * text). The driver remembers per connection what it has prepared. Bounded: at most `MAX_TEXTS`
 * texts are counted and `MAX_TEXTS` named, at most `MAX_PER_CONNECTION` statements are prepared
 * on one connection; beyond that statements go unnamed, as before.
 *
 * Where a named statement cannot be used, the statement is sent unnamed instead:
 * - `26000` (the statement does not exist on the server connection that got it) or `42P05` (it
 *   exists already, prepared there by another client): a pooler in transaction mode hands each
 *   statement to any server connection. Naming stops for good.
 * - `0A000` "cached plan must not change result type" (other errors under that code are passed
 *   on as they are): a migration, perhaps another replica's
 *   rolling deploy, changed a table a `select *` reads. Every statement is then prepared afresh,
 *   under new names, on every connection: one such error tells of a schema change for all.
 *
 * Either error comes before the statement ran, so outside a transaction it is sent again at once,
 * unnamed. Inside one, the transaction is already aborted: the error stands (the request fails
 * as on any database error, once), and the caller's next attempt is planned afresh.
 */

const THRESHOLD = 3;
const MAX_TEXTS = 500;
const MAX_PER_CONNECTION = 100;
/**
 * Statements worth planning once: DML and queries, not `begin`, `commit` or utility commands,
 * and never several statements in one text (a named statement holds exactly one).
 */
const isPreparable = (text: string) =>
  /^\s*(select|insert|update|delete|with)\b/i.test(text) && !text.includes(';');

/** The server's answer when a prepared statement's result columns changed under it. */
function isOutdatedPlan(err: unknown): boolean {
  const e = err as { code?: unknown; routine?: unknown; message?: unknown } | null;
  return (
    e?.code === '0A000' &&
    (e.routine === 'RevalidateCachedQuery' ||
      String(e.message).includes('cached plan must not change result type'))
  );
}

/** The part of a node-postgres client this uses: its query method, as Kysely calls it. */
export interface QueryClient {
  query(textOrConfig: unknown, values?: unknown): Promise<unknown>;
}

interface ConnectionState {
  inTransaction: boolean;
  /** Names prepared on this connection (outdated ones included: they stay until it closes). */
  prepared: Set<string>;
}

export interface StatementCache {
  /**
   * Makes `client` send repeated statements named. Call once per new client. Only the promise
   * form `query(text, values)` (Kysely's) is touched; any other call reaches the driver as it is.
   */
  attach(client: QueryClient): void;
  /** For tests and metrics: statements named so far, and whether naming stopped (a pooler). */
  stats(): { named: number; generation: number; disabled: boolean };
}

export function createStatementCache(): StatementCache {
  const counts = new Map<string, number>();
  const names = new Map<string, string>();
  let disabled = false;
  /** Bumped when the schema changed under prepared statements: names of older ones are not reused. */
  let generation = 0;

  function nameFor(text: string, state: ConnectionState): string | undefined {
    if (disabled) return undefined;
    let name = names.get(text);
    if (name === undefined) {
      if (!isPreparable(text)) return undefined;
      const n = (counts.get(text) ?? 0) + 1;
      if (n < THRESHOLD || names.size >= MAX_TEXTS) {
        // A full count table starts over rather than keep one-off texts for ever.
        if (counts.size >= MAX_TEXTS && !counts.has(text)) counts.clear();
        counts.set(text, n);
        return undefined;
      }
      counts.delete(text);
      name = `claw_${generation}_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;
      names.set(text, name);
    }
    if (!state.prepared.has(name)) {
      if (state.prepared.size >= MAX_PER_CONNECTION) return undefined;
      state.prepared.add(name);
    }
    return name;
  }

  function attach(client: QueryClient): void {
    const send = client.query.bind(client);
    const state: ConnectionState = { inTransaction: false, prepared: new Set() };
    client.query = (...args: unknown[]): Promise<unknown> => {
      const [textOrConfig, values] = args;
      if (typeof textOrConfig !== 'string' || args.length > 2 || typeof values === 'function')
        return (send as (...a: unknown[]) => Promise<unknown>)(...args);
      const text = textOrConfig;
      const head = text.slice(0, 24).trimStart().toLowerCase();
      if (head === 'begin' || head.startsWith('start transaction')) state.inTransaction = true;
      else if (head === 'commit' || head === 'rollback') state.inTransaction = false;
      const name = nameFor(text, state);
      if (name === undefined) return send(text, values);
      return send({ name, text, values }).catch((err: unknown) => {
        const code = (err as { code?: unknown } | null)?.code;
        if (code === '26000' || code === '42P05') disabled = true;
        else if (isOutdatedPlan(err)) {
          // Once per schema change, not once per connection that finds out.
          if (names.get(text) === name) {
            generation += 1;
            names.clear();
          }
        } else throw err;
        if (state.inTransaction) throw err;
        return send(text, values);
      });
    };
  }

  return { attach, stats: () => ({ named: names.size, generation, disabled }) };
}
