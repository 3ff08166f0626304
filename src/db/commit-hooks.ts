import {
  CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';

/**
 * Work that must happen only once a transaction has committed (counting a decision in the
 * metrics, say): registered inside the transaction, run right after its COMMIT succeeds, and
 * dropped if it rolls back, if COMMIT itself fails, or if a savepoint it was registered after is
 * rolled back to. Kysely has no such hook; the driver below keeps one list per connection.
 *
 * A statement that fails inside a transaction aborts it: PostgreSQL (and PGlite) then answer
 * COMMIT with ROLLBACK and no error, and Kysely's result does not carry the command tag that
 * would tell. So the driver remembers the failure itself: from then on the transaction commits
 * nothing and runs no hook, unless a `rollback to savepoint` (the only statement an aborted
 * transaction accepts, and only for a savepoint made before the failure) brings it back to a
 * state from before the failure, with the hooks registered until that savepoint.
 *
 * A transaction reaches its connection only by running a query on it, so registration is a
 * query: a marker the hooked connection recognises by identity and never sends to the server.
 * Over a driver without hooks the marker runs as `select 1` and the work is dropped: nothing is
 * ever reported that may not have committed.
 */
const markers = new WeakMap<CompiledQuery, () => void>();

/** What `afterCommit` needs of a Kysely instance or transaction (any schema). */
export interface QueryRunner {
  readonly isTransaction: boolean;
  executeQuery<R>(query: CompiledQuery<R>): Promise<QueryResult<R>>;
}

/**
 * Runs `work` after the transaction `db` commits (never if it rolls back). Outside a
 * transaction, every statement before this one has already committed: `work` runs now.
 */
export async function afterCommit(db: QueryRunner, work: () => void): Promise<void> {
  if (!db.isTransaction) {
    runHook(work);
    return;
  }
  const marker = CompiledQuery.raw('select 1');
  markers.set(marker, work);
  await db.executeQuery(marker);
}

// A hook runs after COMMIT: its failure cannot change what committed, and must not make the
// caller believe the transaction failed. Hooks are counters; they are not expected to throw.
function runHook(work: () => void): void {
  try {
    work();
  } catch {
    /* see above */
  }
}

/** Plain `savepoint x`, `rollback to [savepoint] x`, `release [savepoint] x`, as the code writes them. */
const SAVEPOINT_SQL =
  /^\s*(savepoint|rollback\s+to(?:\s+savepoint)?|release(?:\s+savepoint)?)\s+("?)(\w+)\2\s*;?\s*$/i;

/** The hooks of one transaction, with the savepoints that may still cut them back. */
class PendingHooks {
  readonly work: (() => void)[] = [];
  private readonly savepoints: { name: string; mark: number }[] = [];
  /** A statement failed since BEGIN or the last successful rollback to a savepoint. */
  aborted = false;

  savepoint(name: string): void {
    this.savepoints.push({ name: name.toLowerCase(), mark: this.work.length });
  }

  /**
   * Hooks registered since the savepoint are dropped; the savepoint itself stays (as in
   * PostgreSQL). The server accepted it, so the savepoint predates any failure, which it undoes.
   */
  rollbackTo(name: string): void {
    const at = this.find(name);
    if (at < 0) {
      // A savepoint this list never saw (made in words the pattern does not know): nothing here
      // tells which hooks survive it, so none do. The server accepted it: not aborted.
      this.work.length = 0;
      this.savepoints.length = 0;
      this.aborted = false;
      return;
    }
    this.work.length = this.savepoints[at]!.mark;
    this.savepoints.length = at + 1;
    this.aborted = false;
  }

  /** The savepoint and those after it are gone; their hooks now belong to the enclosing level. */
  release(name: string): void {
    const at = this.find(name);
    if (at >= 0) this.savepoints.length = at;
  }

  private find(name: string): number {
    const n = name.toLowerCase();
    for (let i = this.savepoints.length - 1; i >= 0; i--) if (this.savepoints[i]!.name === n) return i;
    return -1;
  }
}

class HookedConnection implements DatabaseConnection {
  /** Set between BEGIN and COMMIT or ROLLBACK. */
  pending: PendingHooks | null = null;

  constructor(readonly inner: DatabaseConnection) {}

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const work = markers.get(compiled);
    if (work) {
      markers.delete(compiled);
      if (this.pending) this.pending.work.push(work);
      else runHook(work);
      return { rows: [] };
    }
    let result: QueryResult<R>;
    try {
      result = await this.inner.executeQuery<R>(compiled);
    } catch (err) {
      if (this.pending) this.pending.aborted = true;
      throw err;
    }
    // Recorded once the server accepted it: a savepoint that failed to be made cuts nothing.
    const sp = this.pending ? SAVEPOINT_SQL.exec(compiled.sql) : null;
    if (sp && this.pending) {
      const verb = sp[1]!.toLowerCase();
      const name = sp[3]!;
      if (verb === 'savepoint') this.pending.savepoint(name);
      else if (verb.startsWith('rollback')) this.pending.rollbackTo(name);
      else this.pending.release(name);
    }
    return result;
  }

  async *streamQuery<R>(compiled: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    try {
      yield* this.inner.streamQuery<R>(compiled, chunkSize);
    } catch (err) {
      if (this.pending) this.pending.aborted = true;
      throw err;
    }
  }

  /** Runs a savepoint statement through the inner driver; a failure aborts as any statement's does. */
  async guarded(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      if (this.pending) this.pending.aborted = true;
      throw err;
    }
  }
}

const hooked = (c: DatabaseConnection): HookedConnection => {
  if (!(c instanceof HookedConnection))
    throw new Error('commit hooks: a connection this driver did not hand out');
  return c;
};

/** A driver whose connections run `afterCommit` work once their transaction commits. */
export class CommitHookDriver implements Driver {
  constructor(private readonly inner: Driver) {}

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new HookedConnection(await this.inner.acquireConnection());
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const c = hooked(connection);
    await this.inner.beginTransaction(c.inner, settings);
    c.pending = new PendingHooks();
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const c = hooked(connection);
    const pending = c.pending;
    c.pending = null;
    await this.inner.commitTransaction(c.inner);
    // An aborted transaction's COMMIT "succeeds" as a ROLLBACK: nothing committed, nothing runs.
    if (!pending || pending.aborted) return;
    for (const work of pending.work) runHook(work);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const c = hooked(connection);
    c.pending = null;
    await this.inner.rollbackTransaction(c.inner);
  }

  async savepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    const c = hooked(connection);
    if (!this.inner.savepoint) throw new Error('this database driver has no savepoints');
    await c.guarded(() => this.inner.savepoint!(c.inner, name, compileQuery));
    c.pending?.savepoint(name);
  }

  async rollbackToSavepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    const c = hooked(connection);
    if (!this.inner.rollbackToSavepoint) throw new Error('this database driver has no savepoints');
    await c.guarded(() => this.inner.rollbackToSavepoint!(c.inner, name, compileQuery));
    c.pending?.rollbackTo(name);
  }

  async releaseSavepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    const c = hooked(connection);
    if (!this.inner.releaseSavepoint) throw new Error('this database driver has no savepoints');
    await c.guarded(() => this.inner.releaseSavepoint!(c.inner, name, compileQuery));
    c.pending?.release(name);
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    const c = hooked(connection);
    c.pending = null;
    await this.inner.releaseConnection(c.inner);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

/** `dialect` with commit hooks on its driver. */
export function withCommitHooks(dialect: Dialect): Dialect {
  return {
    createAdapter: (): DialectAdapter => dialect.createAdapter(),
    createDriver: (): Driver => new CommitHookDriver(dialect.createDriver()),
    createIntrospector: (db: Kysely<unknown>): DatabaseIntrospector => dialect.createIntrospector(db),
    createQueryCompiler: (): QueryCompiler => dialect.createQueryCompiler(),
  };
}
