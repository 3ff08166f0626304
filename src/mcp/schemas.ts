import { z } from 'zod';

/** Input pieces the tools share, as the API's route schemas declare them. */

export const MM_ID = /^[a-z0-9]{26}$/;

export const mattermostId = (what: string) =>
  z.string().regex(MM_ID, `${what} must be a Mattermost id (26 lower-case letters and digits)`);

export const jobRef = z
  .union([z.number().int().positive(), z.string().regex(/^(job:)?[1-9][0-9]{0,15}$/)])
  .describe('The job: 12 or "job:12"');

export const stepId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/)
  .describe('The step id, as in the plan (e.g. "post-summary")');

export const scalar = z.union([z.string().max(4000), z.number().int(), z.boolean()]);
