import type { FastifyInstance, FastifyRequest } from 'fastify';
import { STEP_ID } from '../../approvals/parse-command.js';
import { AppError } from '../../errors.js';
import { closeJob, claimToken, MAX_RECEIPTS_PER_RESULT, reportResult } from '../../jobs/agent-job-ops.js';
import type { EngineContext } from '../../jobs/context.js';
import { createJob } from '../../jobs/create-job.js';
import { findJob } from '../../jobs/job-repository.js';
import { chainVersion, snapshotJobView } from '../../jobs/job-view.js';
import { MAX_PLAN_STEPS } from '../../jobs/plan.js';
import { authenticateAgentOnly } from '../auth.js';
import { AUTH_ERRORS, BODY_ERRORS, errorResponses, PARAM_ERRORS } from '../error-handler.js';
import { SECURITY } from '../openapi.js';
import { requestEngine } from '../request-id.js';

export const MAX_WAIT_SECONDS = 30;
const MM_ID = '^[a-z0-9]{26}$';
const JOB_ID = '^[1-9][0-9]{0,15}$';
const scalar = {
  anyOf: [{ type: 'string', maxLength: 4000 }, { type: 'integer' }, { type: 'boolean' }],
} as const;
// Query strings arrive as text and the app's ajv does not coerce types, so numbers are
// declared as digit strings and converted here.
const DIGITS = { type: 'string', pattern: '^(0|[1-9][0-9]{0,15})$' } as const;

/** What an agent's own job answers once it is no longer open. */
const JOB_ENDED = ['ERR_JOB_CLOSED', 'ERR_JOB_EXPIRED', 'ERR_JOB_REVOKED'] as const;

/** `?wait=` in seconds, at most MAX_WAIT_SECONDS. */
function waitSeconds(raw: string | undefined): number {
  const wait = Number(raw ?? 0);
  if (wait > MAX_WAIT_SECONDS)
    throw new AppError('ERR_VALIDATION', `request querystring/wait must be <= ${MAX_WAIT_SECONDS}`);
  return wait;
}

/** Who settled a step and how (`StepDecision` of the job view): never a post id nor a token. */
const stepDecisionSchema = {
  type: ['object', 'null'],
  description: 'How the step was settled and by whom; null while it awaits approval in an open job',
  additionalProperties: false,
  required: ['outcome', 'by', 'reason', 'at'],
  properties: {
    outcome: {
      type: 'string',
      enum: ['approved', 'auto', 'denied', 'revoked', 'cancelled', 'expired'],
      description:
        '`approved`: people made the quorum; `auto`: runs without approval; otherwise how the step, or the job ' +
        'ending that stopped it, was settled',
    },
    by: {
      type: 'array',
      description:
        'The approvals that made the quorum (oldest first), the denier, or who revoked or cancelled the job; ' +
        'empty for an auto step, an expiry, or a job closed by its agent',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['user_id', 'username', 'groups', 'via', 'at'],
        properties: {
          user_id: {
            type: 'string',
            description:
              "A Mattermost user id; `admin:<name>` for an operator; a token revoked through the API: the revoker's id",
          },
          username: {
            type: ['string', 'null'],
            description:
              'As Mattermost gave it when the quorum was checked (approvers); null when not recorded',
          },
          groups: {
            type: 'array',
            items: { type: 'string' },
            description: 'The group an approval was counted for; the groups a denier or revoker was found in',
          },
          via: { type: 'string', enum: ['chat', 'button', 'command', 'api'] },
          at: { type: 'string' },
        },
      },
    },
    reason: {
      type: ['string', 'null'],
      description: "The denier's reason; for a step stopped by its job's ending, the job's end reason",
    },
    at: { type: 'string', description: 'When the step was settled' },
  },
} as const;

const jobViewSchema = {
  type: 'object',
  additionalProperties: false,
  // Every field is always present (JobView and `version`), so clients may rely on each.
  required: [
    'id',
    'job_id',
    'version',
    'status',
    'origin',
    'channel_id',
    'root_post_id',
    'requester_id',
    'executor',
    'runbook',
    'policy',
    'plan_hash_b64u',
    'created_at',
    'expires_at',
    'ended_at',
    'end_reason',
    'bundle_id',
    'steps',
  ],
  properties: {
    id: { type: 'string', description: '`job:<job_id>`' },
    job_id: { type: 'integer' },
    version: {
      type: 'integer',
      description: "Sequence number of the job's latest event: pass it as `after` to long-poll for a change",
    },
    status: { type: 'string' },
    origin: { type: 'string' },
    channel_id: { type: ['string', 'null'] },
    root_post_id: { type: ['string', 'null'] },
    requester_id: { type: 'string' },
    executor: { type: 'string' },
    runbook: { type: ['string', 'null'] },
    policy: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'policy_hash_b64u'],
      properties: { name: { type: 'string' }, policy_hash_b64u: { type: 'string' } },
    },
    plan_hash_b64u: { type: 'string' },
    created_at: { type: 'string' },
    expires_at: { type: 'string' },
    ended_at: { type: ['string', 'null'] },
    end_reason: { type: ['string', 'null'] },
    bundle_id: { type: ['string', 'null'] },
    steps: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: [
          'id',
          'tool',
          'args',
          'summary',
          'gate',
          'status',
          'required_approvals',
          'approver_groups',
          'distinct_groups',
          'approvals',
          'simulation_step',
          'token',
          'decision',
        ],
        properties: {
          id: { type: 'string' },
          tool: { type: 'string' },
          args: { type: 'object', additionalProperties: true },
          summary: { type: 'string' },
          gate: { type: 'string' },
          status: { type: 'string' },
          required_approvals: { type: 'integer' },
          approver_groups: { type: 'array', items: { type: 'string' } },
          distinct_groups: { type: 'boolean' },
          // null: group membership cannot be checked now, so how many approvals count is unknown.
          approvals: { type: ['integer', 'null'] },
          simulation_step: { type: ['string', 'null'] },
          // Never the token itself: whether it can be claimed (POST .../token), once.
          token: {
            type: ['object', 'null'],
            additionalProperties: false,
            required: ['jti', 'expires_at', 'claimable'],
            properties: {
              jti: { type: 'string' },
              expires_at: { type: 'string' },
              claimable: { type: 'boolean' },
            },
          },
          decision: stepDecisionSchema,
        },
      },
    },
  },
} as const;

const jobParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: JOB_ID } },
} as const;
const stepParams = {
  type: 'object',
  required: ['id', 'step'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: JOB_ID }, step: { type: 'string', pattern: STEP_ID.source } },
} as const;

/** Aborts when the client goes away, so a long-poll never outlives its request. */
function abortOnClose(req: FastifyRequest): AbortSignal {
  const controller = new AbortController();
  req.raw.once('close', () => controller.abort());
  return controller.signal;
}

/**
 * Waits until `ready()` holds or `seconds` pass. Changes in this process wake it at once;
 * changes made by another replica are seen within a second.
 */
async function longPoll(
  ctx: EngineContext,
  seconds: number,
  signal: AbortSignal,
  ready: () => Promise<boolean>,
  jobId?: number,
) {
  const deadline = Date.now() + seconds * 1000;
  while (!(await ready())) {
    const left = deadline - Date.now();
    if (left <= 0 || signal.aborted) return;
    await ctx.notifier.next(Math.min(left, 1000), jobId, signal);
  }
}

export function jobRoutes(
  app: FastifyInstance,
  deps: { engine: EngineContext; adminToken: string | null },
): void {
  const ctx = deps.engine;
  const auth = (req: FastifyRequest) =>
    authenticateAgentOnly(req, { db: ctx.db, adminToken: deps.adminToken });
  const view = async (engine: EngineContext, jobId: number) => {
    const read = await snapshotJobView(engine, jobId);
    if (!read) throw new AppError('ERR_JOB_NOT_FOUND', `job:${jobId} does not exist`);
    return { ...read.view, version: read.version };
  };

  app.post<{
    Body: {
      channel_id: string;
      team_id?: string;
      requester_id: string;
      runbook?: { name: string; params?: Record<string, string | number | boolean> };
      steps?: {
        id: string;
        tool: string;
        args?: Record<string, string | number | boolean>;
        summary: string;
      }[];
    };
  }>(
    '/v1/jobs',
    {
      schema: {
        operationId: 'createJob',
        summary: "Submit a plan: a runbook of the channel's policy, or explicit steps",
        description:
          "The channel's pinned policy decides: the agent must be the runbook's executor and the requester in a " +
          'requester group. The bot posts the plan in the channel; people approve the gated steps in its thread.',
        tags: ['jobs'],
        security: SECURITY.agent,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['channel_id', 'requester_id'],
          properties: {
            channel_id: { type: 'string', pattern: MM_ID },
            team_id: { type: 'string', pattern: MM_ID },
            requester_id: { type: 'string', pattern: MM_ID },
            runbook: {
              type: 'object',
              additionalProperties: false,
              required: ['name'],
              properties: {
                name: { type: 'string', minLength: 1, maxLength: 64 },
                params: { type: 'object', maxProperties: 32, additionalProperties: scalar },
              },
            },
            steps: {
              type: 'array',
              minItems: 1,
              maxItems: MAX_PLAN_STEPS,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['id', 'tool', 'summary'],
                properties: {
                  id: { type: 'string', maxLength: 64 },
                  tool: { type: 'string', maxLength: 128 },
                  args: { type: 'object', maxProperties: 32, additionalProperties: scalar },
                  summary: { type: 'string', minLength: 1, maxLength: 500 },
                },
              },
            },
          },
        },
        response: {
          201: { description: 'The job, as GET /v1/jobs/{id} shows it', ...jobViewSchema },
          ...errorResponses([
            ...AUTH_ERRORS,
            ...BODY_ERRORS,
            'ERR_PLAN_INVALID',
            'ERR_CHANNEL_CLOSED',
            'ERR_NOT_A_REQUESTER',
            'ERR_FORBIDDEN',
            'ERR_PLAN_DENIED',
            'ERR_PAUSED',
            'ERR_POLICY_UNAVAILABLE',
          ]),
        },
      },
    },
    async (req, reply) => {
      const agent = await auth(req);
      const engine = requestEngine(ctx, req);
      const b = req.body;
      const created = await createJob(engine, {
        origin: {
          kind: 'api',
          agentId: agent.id,
          channelId: b.channel_id,
          ...(b.team_id ? { teamId: b.team_id } : {}),
        },
        requesterId: b.requester_id,
        ...(b.runbook ? { runbook: { name: b.runbook.name, params: b.runbook.params ?? {} } } : {}),
        ...(b.steps ? { steps: b.steps.map((s) => ({ ...s, args: s.args ?? {} })) } : {}),
      });
      reply.status(201);
      return view(engine, created.jobId);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { wait?: string; after?: string } }>(
    '/v1/jobs/:id',
    {
      schema: {
        operationId: 'getJob',
        summary: 'One of your jobs; long-polls with `wait` until its version exceeds `after`',
        description:
          "Another agent's job answers 404 exactly like a missing one. Never the token, only whether it is claimable.",
        tags: ['jobs'],
        security: SECURITY.agent,
        params: jobParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            wait: { ...DIGITS, description: `Seconds to wait for a change, at most ${MAX_WAIT_SECONDS}` },
            after: { ...DIGITS, description: 'The version last seen (default: the current one)' },
          },
        },
        response: {
          200: { description: 'The job', ...jobViewSchema },
          ...errorResponses([...AUTH_ERRORS, ...PARAM_ERRORS, 'ERR_JOB_NOT_FOUND']),
        },
      },
    },
    async (req) => {
      const agent = await auth(req);
      const engine = requestEngine(ctx, req);
      const wait = waitSeconds(req.query.wait);
      const jobId = Number(req.params.id);
      const job = await findJob(ctx.db, jobId);
      if (!job || job.executor !== agent.id)
        throw new AppError('ERR_JOB_NOT_FOUND', `job:${jobId} does not exist`);
      if (wait > 0) {
        const start =
          req.query.after === undefined ? await chainVersion(ctx.db, jobId) : Number(req.query.after);
        await longPoll(
          ctx,
          wait,
          abortOnClose(req),
          async () => (await chainVersion(ctx.db, jobId)) > start,
          jobId,
        );
      }
      return view(engine, jobId);
    },
  );

  app.get<{ Querystring: { ready?: '0' | '1'; wait?: string } }>(
    '/v1/jobs',
    {
      schema: {
        operationId: 'listJobs',
        summary: 'Your open jobs (at most 50); `ready=1`: only those with a claimable step',
        tags: ['jobs'],
        security: SECURITY.agent,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ready: { type: 'string', enum: ['0', '1'], description: '1: only jobs with an approved step' },
            wait: {
              ...DIGITS,
              description: `Seconds to wait while there are none, at most ${MAX_WAIT_SECONDS}`,
            },
          },
        },
        response: {
          200: {
            description: 'Open jobs, oldest first',
            type: 'object',
            additionalProperties: false,
            required: ['jobs'],
            properties: { jobs: { type: 'array', items: jobViewSchema } },
          },
          ...errorResponses([...AUTH_ERRORS, 'ERR_VALIDATION']),
        },
      },
    },
    async (req) => {
      const agent = await auth(req);
      const engine = requestEngine(ctx, req);
      const ready = req.query.ready === '1';
      const wait = waitSeconds(req.query.wait);
      const find = async () => {
        let q = ctx.db
          .selectFrom('jobs')
          .select('id')
          .where('executor', '=', agent.id)
          .where('status', '=', 'open')
          .orderBy('id')
          .limit(50);
        if (ready) {
          q = q.where((eb) =>
            eb.exists(
              eb
                .selectFrom('job_steps')
                .select('job_steps.step_id')
                .whereRef('job_steps.job_id', '=', 'jobs.id')
                .where('job_steps.status', '=', 'approved'),
            ),
          );
        }
        return (await q.execute()).map((r) => r.id);
      };
      let ids = await find();
      if (ids.length === 0 && wait > 0) {
        await longPoll(ctx, wait, abortOnClose(req), async () => (ids = await find()).length > 0);
      }
      return { jobs: await Promise.all(ids.map((id) => view(engine, id))) };
    },
  );

  app.post<{ Params: { id: string; step: string } }>(
    '/v1/jobs/:id/steps/:step/token',
    {
      schema: {
        operationId: 'claimStepToken',
        summary: "Claim an approved step's CST, once",
        description:
          'The stored copy is erased in the same transaction (`Cache-Control: no-store`). Gateways bind their ' +
          'receipts to `run_id` and `event_hash_b64u`. No body.',
        tags: ['jobs'],
        security: SECURITY.agent,
        params: stepParams,
        response: {
          200: {
            description: 'The token, shown this once',
            type: 'object',
            additionalProperties: false,
            required: ['token', 'jti', 'expires_at', 'run_id', 'event_hash_b64u'],
            properties: {
              token: { type: 'string' },
              jti: { type: 'string' },
              expires_at: { type: 'string' },
              run_id: { type: 'string' },
              event_hash_b64u: { type: 'string' },
            },
          },
          ...errorResponses([
            ...AUTH_ERRORS,
            ...PARAM_ERRORS,
            ...BODY_ERRORS,
            'ERR_JOB_NOT_FOUND',
            ...JOB_ENDED,
            'ERR_STEP_NOT_FOUND',
            'ERR_STEP_STATE',
            'ERR_TOKEN_ALREADY_CLAIMED',
            'ERR_TOKEN_REVOKED',
            'ERR_TOKEN_EXPIRED',
            'ERR_PAUSED',
          ]),
        },
      },
    },
    async (req, reply) => {
      const agent = await auth(req);
      const claimed = await claimToken(requestEngine(ctx, req), {
        jobId: Number(req.params.id),
        step: req.params.step,
        agentId: agent.id,
      });
      reply.header('cache-control', 'no-store');
      return {
        token: claimed.token,
        jti: claimed.jti,
        expires_at: claimed.expiresAt.toISOString(),
        run_id: claimed.runId,
        event_hash_b64u: claimed.eventHash,
      };
    },
  );

  app.post<{
    Params: { id: string; step: string };
    Body: { status: 'succeeded' | 'failed'; summary?: string; receipts?: unknown[] };
  }>(
    '/v1/jobs/:id/steps/:step/result',
    {
      schema: {
        operationId: 'reportStepResult',
        summary: "Report a claimed step's outcome, with the gateway's receipts",
        description:
          'Receipts are checked (signature, signer in GATEWAY_SIGNER_DIDS, binding to this run and chain); ' +
          'unverifiable ones are kept and marked. The last success completes the job, a failure ends it.',
        tags: ['jobs'],
        security: SECURITY.agent,
        params: stepParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['status'],
          properties: {
            status: { type: 'string', enum: ['succeeded', 'failed'] },
            summary: { type: 'string', maxLength: 2000 },
            receipts: { type: 'array', maxItems: MAX_RECEIPTS_PER_RESULT, items: { type: 'object' } },
          },
        },
        response: {
          200: {
            description: "What was recorded, and the job's status after it",
            type: 'object',
            additionalProperties: false,
            required: ['step', 'status', 'receipts', 'job_status', 'bundle_id'],
            properties: {
              step: { type: 'string' },
              status: { type: 'string' },
              receipts: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['receipt_id', 'verified', 'failure'],
                  properties: {
                    receipt_id: { type: ['string', 'null'] },
                    verified: { type: 'boolean' },
                    failure: { type: ['string', 'null'] },
                  },
                },
              },
              job_status: { type: 'string' },
              bundle_id: { type: ['string', 'null'] },
            },
          },
          ...errorResponses([
            ...AUTH_ERRORS,
            ...PARAM_ERRORS,
            ...BODY_ERRORS,
            'ERR_JOB_NOT_FOUND',
            ...JOB_ENDED,
            'ERR_STEP_NOT_FOUND',
            'ERR_STEP_STATE',
            'ERR_RECEIPTS_REQUIRED',
            'ERR_POLICY_UNAVAILABLE',
          ]),
        },
      },
    },
    async (req) => {
      const agent = await auth(req);
      const r = await reportResult(requestEngine(ctx, req), {
        jobId: Number(req.params.id),
        step: req.params.step,
        agentId: agent.id,
        status: req.body.status,
        ...(req.body.summary === undefined ? {} : { summary: req.body.summary }),
        ...(req.body.receipts === undefined ? {} : { receipts: req.body.receipts }),
      });
      return {
        step: r.step,
        status: r.status,
        receipts: r.receipts.map((c) => ({
          receipt_id: c.receiptId,
          verified: c.verified,
          failure: c.failure,
        })),
        job_status: r.ended?.status ?? 'open',
        bundle_id: r.ended?.bundleId ?? null,
      };
    },
  );

  app.post<{ Params: { id: string }; Body: { reason?: string } | undefined }>(
    '/v1/jobs/:id/close',
    {
      // The body is optional: a bare POST closes with the default reason.
      preValidation: async (req) => {
        req.body ??= {};
      },
      config: { openapi: { bodyOptional: true } },
      schema: {
        operationId: 'closeJob',
        summary: 'End your job now; its bundle is sealed',
        description:
          'Completed if every step succeeded, otherwise cancelled with the reason. The body is optional.',
        tags: ['jobs'],
        security: SECURITY.agent,
        params: jobParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { reason: { type: 'string', maxLength: 500 } },
        },
        response: {
          200: {
            description: 'How the job ended',
            type: 'object',
            additionalProperties: false,
            required: ['job_status', 'bundle_id', 'reason'],
            properties: {
              job_status: { type: 'string' },
              bundle_id: { type: 'string' },
              reason: { type: 'string' },
            },
          },
          ...errorResponses([
            ...AUTH_ERRORS,
            ...PARAM_ERRORS,
            ...BODY_ERRORS,
            'ERR_JOB_NOT_FOUND',
            ...JOB_ENDED,
          ]),
        },
      },
    },
    async (req) => {
      const agent = await auth(req);
      const ended = await closeJob(requestEngine(ctx, req), {
        jobId: Number(req.params.id),
        agentId: agent.id,
        ...(req.body?.reason === undefined ? {} : { reason: req.body.reason }),
      });
      return { job_status: ended.status, bundle_id: ended.bundleId, reason: ended.reason };
    },
  );
}
