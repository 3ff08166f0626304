import type { FastifyInstance } from 'fastify';
import { B64U_SHA256, jcsHashB64u } from '../../crypto/hash.js';
import type { Db } from '../../db/database.js';
import { AppError } from '../../errors.js';
import { jobPlan } from '../../jobs/job-repository.js';
import { planHash } from '../../jobs/plan.js';
import { errorResponses, PARAM_ERRORS } from '../error-handler.js';

/** Jobs listed for one plan (the same runbook and params twice make the same plan). */
const MAX_JOBS = 20;

const planSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['plan_hash_b64u', 'steps', 'jobs'],
  properties: {
    plan_hash_b64u: { type: 'string' },
    steps: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'tool', 'args', 'args_sha256_b64u', 'summary'],
        properties: {
          id: { type: 'string' },
          tool: { type: 'string' },
          args: { type: 'object', additionalProperties: true },
          args_sha256_b64u: { type: 'string' },
          summary: { type: 'string' },
        },
      },
    },
    jobs: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'job_id', 'status', 'policy_name', 'policy_hash_b64u', 'created_at'],
        properties: {
          id: { type: 'string' },
          job_id: { type: 'integer' },
          status: { type: 'string' },
          policy_name: { type: 'string' },
          policy_hash_b64u: { type: 'string' },
          created_at: { type: 'string' },
        },
      },
    },
  },
} as const;

/**
 * `GET /v1/plans/:plan_hash_b64u`: the whole plan the plan post links to when a step's arguments
 * are too long for one Mattermost post, with every step's arguments and their SHA-256, and the
 * jobs that carry it (newest first).
 *
 * No credential is asked: approvers follow the link from the thread in a browser. The hash is
 * not a secret, it is a commitment: SHA-256 over the plan's canonical JSON, so whoever can compute
 * it already knows the plan, and whoever was shown it (in the thread) was shown the plan. What the
 * answer adds is the job's id, status and policy, nothing about channel, requester or approvers.
 * For a plan with guessable arguments that confirms such a job exists; plans travel in chat posts
 * and in proof bundles (themselves readable by link), so arguments must never hold secrets
 * anyway. The served plan is re-hashed: the database is not trusted blindly.
 */
export function planRoutes(app: FastifyInstance, deps: { db: Db }): void {
  app.get<{ Params: { plan_hash_b64u: string } }>(
    '/v1/plans/:plan_hash_b64u',
    {
      schema: {
        operationId: 'getPlan',
        summary: 'A whole plan by its hash, with the jobs that carry it',
        description:
          'Every step with its arguments and their SHA-256, re-hashed before it is served, and the newest ' +
          `${MAX_JOBS} jobs with this plan. No credential: the hash commits to the plan (see the README).`,
        tags: ['proofs'],
        params: {
          type: 'object',
          required: ['plan_hash_b64u'],
          additionalProperties: false,
          properties: { plan_hash_b64u: { type: 'string', pattern: B64U_SHA256.source } },
        },
        response: {
          200: { description: 'The plan and its jobs, newest first', ...planSchema },
          ...errorResponses([...PARAM_ERRORS, 'ERR_NOT_FOUND', 'ERR_RATE_LIMITED']),
        },
      },
    },
    async (req, reply) => {
      const hash = req.params.plan_hash_b64u;
      const jobs = await deps.db
        .selectFrom('jobs')
        .selectAll()
        .where('plan_hash_b64u', '=', hash)
        .orderBy('id', 'desc')
        .limit(MAX_JOBS)
        .execute();
      const newest = jobs[0];
      if (!newest) throw new AppError('ERR_NOT_FOUND', 'no such plan');
      const plan = jobPlan(newest);
      if (planHash(plan) !== hash) {
        req.log.error({ jobId: newest.id, planHash: hash }, 'stored plan does not match its hash');
        throw new AppError('ERR_INTERNAL', 'the stored plan does not match its hash');
      }
      // Private: the answer carries job status, which changes; no shared cache may keep it.
      reply.headers({ 'cache-control': 'private, no-cache', 'referrer-policy': 'no-referrer' });
      return {
        plan_hash_b64u: hash,
        steps: plan.map((s) => ({
          id: s.id,
          tool: s.tool,
          args: s.args,
          args_sha256_b64u: jcsHashB64u(s.args),
          summary: s.summary,
        })),
        jobs: jobs.map((j) => ({
          id: `job:${j.id}`,
          job_id: j.id,
          status: j.status,
          policy_name: j.policy_name,
          policy_hash_b64u: j.policy_hash_b64u,
          created_at: j.created_at.toISOString(),
        })),
      };
    },
  );
}
