import type { FastifyInstance } from 'fastify';
import { B64U_SHA256 } from '../../crypto/hash.js';
import { AppError } from '../../errors.js';
import type { EngineContext } from '../../jobs/context.js';
import { pinPolicy } from '../../policy/pins.js';
import type { PolicyService } from '../../policy/policy-service.js';
import type { KeyRing } from '../../tokens/key-ring.js';
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from '../error-handler.js';
import { SECURITY } from '../openapi.js';
import {
  checkActor,
  checkText,
  MAX_ADMIN_REASON,
  MAX_RECORDED_ACTOR,
  pinView,
  pinViewSchema,
  POLICY_NAME,
  policyReport,
  policyReportSchema,
} from './admin-shapes.js';

/** Who every admin route refuses: no or a wrong credential, a spent budget, an agent's key. */
const ADMIN_ERRORS = [...AUTH_ERRORS, 'ERR_FORBIDDEN'] as const;
const common = {
  name: { type: 'string', pattern: POLICY_NAME.source },
  actor: { type: 'string', minLength: 1, maxLength: MAX_RECORDED_ACTOR },
  reason: { type: 'string', minLength: 1, maxLength: MAX_ADMIN_REASON },
} as const;

/** `policy list|pin|unpin` over HTTP (see `adminRoutes`). */
export function adminPolicyRoutes(
  app: FastifyInstance,
  deps: { engine: EngineContext; policies: PolicyService; keyRing: KeyRing },
): void {
  const ctx = deps.engine;
  const pin = async (input: { name: string; hash: string | null; actor: string; reason: string }) => {
    checkActor(input.actor, MAX_RECORDED_ACTOR);
    checkText('the reason', input.reason, { max: MAX_ADMIN_REASON, required: true });
    const row = await pinPolicy(ctx.db, {
      ...input,
      key: deps.keyRing.active,
      trusts: deps.keyRing.trusts,
      clock: ctx.clock,
    });
    // This server applies it now rather than at its next refresh (the pin is committed either way).
    await deps.policies
      .refreshIfChanged()
      .catch((err: unknown) => ctx.log.error({ err }, 'policy refresh after a pin failed'));
    return pinView(row);
  };

  app.get(
    '/v1/admin/policies',
    {
      schema: {
        operationId: 'listPolicies',
        summary: 'Every policy name: its active version and where it comes from, channels, versions, pins',
        description: 'As `claw-approvals policy list`, read from what this server enforces.',
        tags: ['admin'],
        security: SECURITY.admin,
        response: {
          200: { description: 'The policies and the problems of the last load', ...policyReportSchema },
          ...errorResponses([...ADMIN_ERRORS, 'ERR_POLICY_UNAVAILABLE']),
        },
      },
    },
    async () => {
      // What this server enforces, brought up to date as its refresh timer would.
      await deps.policies.refreshIfChanged();
      const snap = deps.policies.current();
      if (!snap) throw new AppError('ERR_POLICY_UNAVAILABLE', 'policies are not loaded');
      return policyReport(ctx.db, snap);
    },
  );

  app.post<{ Body: { name: string; hash: string; actor: string; reason: string } }>(
    '/v1/admin/policies/pin',
    {
      schema: {
        operationId: 'pinPolicy',
        summary: 'Pin a policy name to one of its registered versions (a signed pin, chained to the last)',
        description:
          'As `claw-approvals policy pin`. This server applies the pin at once, the others at their next refresh.',
        tags: ['admin'],
        security: SECURITY.admin,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'hash', 'actor', 'reason'],
          properties: { ...common, hash: { type: 'string', pattern: B64U_SHA256.source } },
        },
        response: {
          200: { description: 'The pin recorded', ...pinViewSchema },
          ...errorResponses([
            ...ADMIN_ERRORS,
            ...BODY_ERRORS,
            'ERR_WPC_NOT_FOUND',
            'ERR_WPC_CORRUPTED',
            'ERR_POLICY_CONFLICT',
          ]),
        },
      },
    },
    async (req) => pin(req.body),
  );

  app.post<{ Body: { name: string; actor: string; reason: string } }>(
    '/v1/admin/policies/unpin',
    {
      schema: {
        operationId: 'unpinPolicy',
        summary: 'Unpin a policy name: it follows its file again (a signed pin of no version)',
        description: 'As `claw-approvals policy unpin`. Only a name pinned before can be unpinned.',
        tags: ['admin'],
        security: SECURITY.admin,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'actor', 'reason'],
          properties: common,
        },
        response: {
          200: { description: 'The unpin recorded', ...pinViewSchema },
          ...errorResponses([...ADMIN_ERRORS, ...BODY_ERRORS, 'ERR_POLICY_NOT_FOUND', 'ERR_POLICY_CONFLICT']),
        },
      },
    },
    async (req) => pin({ ...req.body, hash: null }),
  );
}
