/**
 * A database's connections as the metrics show them: PostgreSQL's pg.Pool, or PGlite's single
 * in-process connection as a pool of one.
 */
export interface PoolStats {
  /** Connections the pool may open. */
  max: number;
  /** Connections open now. */
  total: number;
  /** Open connections nobody uses. */
  idle: number;
  /** Callers waiting for a connection. */
  waiting: number;
}
