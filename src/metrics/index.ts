export { AppMetrics, type AppMetricsOptions } from './app-metrics.js';
export { COUNT_CAP, CURSOR_CAP, type DatabaseSnapshot, readDatabaseSnapshot } from './database-snapshot.js';
