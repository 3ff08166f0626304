export { startSandbox, SANDBOX_SERVER_VERSION } from './sandbox.js';
export type { Sandbox, SandboxOptions, RequestFilter } from './sandbox.js';
export { OPS_WORKSPACE, seedOpsWorkspace } from './seed.js';
export type { OpsPerson, SeededWorkspace } from './seed.js';
export type { FaultSpec, FaultStatus } from './faults.js';
export { AppError } from './app-error.js';
export type * from './types.js';
