import type { FastifyInstance } from 'fastify';
import { B64U_SHA256 } from '../../crypto/hash.js';
import { AppError } from '../../errors.js';
import type { EngineContext } from '../../jobs/context.js';
import { pinPolicy } from '../../policy/pins.js';
import type { PolicyService } from '../../policy/policy-service.js';
import type { KeyRing } from '../../tokens/key-ring.js';
import { errorBodySchema } from '../error-handler.js';
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

const errors = { '4xx': errorBodySchema, '5xx': errorBodySchema } as const;
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
    { schema: { response: { 200: policyReportSchema, ...errors } } },
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
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'hash', 'actor', 'reason'],
          properties: { ...common, hash: { type: 'string', pattern: B64U_SHA256.source } },
        },
        response: { 200: pinViewSchema, ...errors },
      },
    },
    async (req) => pin(req.body),
  );

  app.post<{ Body: { name: string; actor: string; reason: string } }>(
    '/v1/admin/policies/unpin',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'actor', 'reason'],
          properties: common,
        },
        response: { 200: pinViewSchema, ...errors },
      },
    },
    async (req) => pin({ ...req.body, hash: null }),
  );
}
