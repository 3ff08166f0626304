/**
 * Every request the client makes, as (method, OpenAPI path template, query parameters), so a
 * test can check each one against the server's `/openapi.json`.
 */
export const CLIENT_ROUTES = {
  submitJob: { method: 'POST', path: '/v1/jobs', query: [] },
  getJob: { method: 'GET', path: '/v1/jobs/{id}', query: ['wait', 'after'] },
  readyJobs: { method: 'GET', path: '/v1/jobs', query: ['ready', 'wait'] },
  claimToken: { method: 'POST', path: '/v1/jobs/{id}/steps/{step}/token', query: [] },
  reportResult: { method: 'POST', path: '/v1/jobs/{id}/steps/{step}/result', query: [] },
  closeJob: { method: 'POST', path: '/v1/jobs/{id}/close', query: [] },
  introspect: { method: 'POST', path: '/v1/tokens/introspect', query: [] },
  redeem: { method: 'POST', path: '/v1/tokens/redeem', query: [] },
  revokeToken: { method: 'POST', path: '/v1/tokens/revoke', query: [] },
} as const satisfies Record<string, { method: 'GET' | 'POST'; path: `/${string}`; query: readonly string[] }>;

export type ClientOperation = keyof typeof CLIENT_ROUTES;
