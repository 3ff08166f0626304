export { ClawClient, CLIENT_VERSION, MAX_WAIT_SECONDS } from './client.js';
export type {
  CallOptions,
  ClawClientOptions,
  GetJobOptions,
  WaitForDecisionOptions,
  WaitOptions,
} from './client.js';
export { decidersText, decisionOf } from './decision.js';
export { API_ERROR_CODES, ClawApiError, ClawError, ClawUnreachableError, isClawError } from './errors.js';
export type { ApiErrorCode, ClawApiErrorCode, ClawErrorCode, UnlistedErrorCode } from './errors.js';
export { CLIENT_ROUTES } from './routes.js';
export type { ClientOperation } from './routes.js';
export type * from './types.js';
