import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JobStatus, StepStatus } from '../../src/db/schema.js';
import {
  isExpired,
  type JobEnding,
  jobTransition,
  settledStatus,
  type StepAction,
  stepActionOnJobEnd,
  stepTransition,
  TERMINAL_JOB,
  TERMINAL_STEP,
} from '../../src/jobs/state-machine.js';

const STEP_STATUSES: StepStatus[] = [
  'awaiting_approval',
  'approved',
  'claimed',
  'succeeded',
  'failed',
  'denied',
  'revoked',
  'cancelled',
];
const ACTIONS: StepAction[] = ['mint', 'claim', 'succeed', 'fail', 'deny', 'revoke', 'cancel'];
const JOB_STATUSES: JobStatus[] = [
  'open',
  'completed',
  'failed',
  'denied',
  'expired',
  'revoked',
  'cancelled',
];
const ENDINGS: JobEnding[] = ['revoked', 'cancelled', 'expired'];

/** The step lifecycle, written out by hand: every pair not listed here is refused. */
const ALLOWED: Record<string, StepStatus> = {
  'awaiting_approval/mint': 'approved',
  'awaiting_approval/deny': 'denied',
  'awaiting_approval/revoke': 'revoked',
  'awaiting_approval/cancel': 'cancelled',
  'approved/claim': 'claimed',
  'approved/fail': 'failed',
  'approved/revoke': 'revoked',
  'approved/cancel': 'cancelled',
  'claimed/succeed': 'succeeded',
  'claimed/fail': 'failed',
  'claimed/revoke': 'revoked',
  'claimed/cancel': 'cancelled',
};

const pairs = STEP_STATUSES.flatMap((s) => ACTIONS.map((a) => [s, a] as const));

describe('stepTransition', () => {
  it.each(pairs.filter(([s, a]) => `${s}/${a}` in ALLOWED))('%s --%s--> allowed', (status, action) => {
    expect(stepTransition(status, action)).toEqual({ ok: true, next: ALLOWED[`${status}/${action}`] });
  });

  it.each(pairs.filter(([s, a]) => !(`${s}/${a}` in ALLOWED)))('%s --%s--> refused', (status, action) => {
    expect(stepTransition(status, action)).toEqual({ ok: false, from: status, action });
  });

  it('covers all 56 pairs, 12 of them allowed', () => {
    expect(pairs).toHaveLength(56);
    expect(pairs.filter(([s, a]) => stepTransition(s, a).ok)).toHaveLength(12);
  });

  it('terminal statuses have no way out, and every open status can still be revoked and cancelled', () => {
    expect([...TERMINAL_STEP].sort()).toEqual(['cancelled', 'denied', 'failed', 'revoked', 'succeeded']);
    for (const s of STEP_STATUSES) {
      const outgoing = ACTIONS.filter((a) => stepTransition(s, a).ok);
      if (TERMINAL_STEP.has(s)) expect(outgoing).toEqual([]);
      else expect(outgoing).toEqual(expect.arrayContaining(['revoke', 'cancel']));
    }
  });

  it('any sequence of actions ends where the table says and never leaves a terminal status (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...ACTIONS), { maxLength: 12 }), (actions) => {
        let s: StepStatus = 'awaiting_approval';
        for (const a of actions) {
          const t = stepTransition(s, a);
          const expected = ALLOWED[`${s}/${a}`];
          if (expected === undefined ? t.ok : !t.ok || t.next !== expected) return false;
          if (TERMINAL_STEP.has(s) && t.ok) return false;
          if (t.ok) s = t.next;
        }
        return true;
      }),
    );
  });
});

describe('settledStatus', () => {
  it.each<[StepStatus[], ReturnType<typeof settledStatus>]>([
    [[], null],
    [['awaiting_approval'], null],
    [['succeeded', 'approved'], null],
    [['succeeded', 'claimed'], null],
    [['succeeded', 'cancelled'], null],
    [['succeeded', 'revoked'], null],
    [['succeeded'], 'completed'],
    [['succeeded', 'succeeded', 'succeeded'], 'completed'],
    [['succeeded', 'failed'], 'failed'],
    [['awaiting_approval', 'denied'], 'denied'],
    [['failed', 'denied'], 'failed'],
    [['denied', 'failed', 'succeeded'], 'failed'],
  ])('%j -> %s', (steps, expected) => {
    expect(settledStatus(steps)).toBe(expected);
  });

  it('failure outranks denial, denial outranks completion (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...STEP_STATUSES), { maxLength: 10 }), (steps) => {
        const expected = steps.includes('failed')
          ? 'failed'
          : steps.includes('denied')
            ? 'denied'
            : steps.length > 0 && steps.every((s) => s === 'succeeded')
              ? 'completed'
              : null;
        return settledStatus(steps) === expected;
      }),
    );
  });
});

describe('jobTransition', () => {
  it.each(ENDINGS)('open -> %s is allowed', (ending) => {
    expect(jobTransition('open', ending)).toEqual({ ok: true, next: ending });
  });

  it.each(JOB_STATUSES.filter((s) => s !== 'open').flatMap((s) => ENDINGS.map((e) => [s, e] as const)))(
    '%s -> %s is refused',
    (status, ending) => {
      expect(jobTransition(status, ending)).toEqual({ ok: false, from: status, action: ending });
    },
  );

  it('every status but open is terminal', () => {
    expect(JOB_STATUSES.filter((s) => !TERMINAL_JOB.has(s))).toEqual(['open']);
  });

  it('a revoked job revokes its open steps; any other ending cancels them', () => {
    expect(stepActionOnJobEnd('revoked')).toBe('revoke');
    for (const s of JOB_STATUSES.filter((x) => x !== 'revoked')) expect(stepActionOnJobEnd(s)).toBe('cancel');
  });
});

describe('isExpired', () => {
  const expiresAt = new Date('2026-11-21T11:00:00Z');
  const at = (iso: string) => new Date(iso);

  it('is false before the deadline and true from the deadline on', () => {
    const job = { status: 'open' as const, expires_at: expiresAt };
    expect(isExpired(job, at('2026-11-21T10:59:59.999Z'))).toBe(false);
    expect(isExpired(job, at('2026-11-21T11:00:00.000Z'))).toBe(true);
    expect(isExpired(job, at('2026-11-21T11:00:00.001Z'))).toBe(true);
    expect(isExpired(job, at('2027-01-01T00:00:00Z'))).toBe(true);
  });

  it.each(JOB_STATUSES.filter((s) => s !== 'open'))('a %s job is never "expired" again', (status) => {
    expect(isExpired({ status, expires_at: expiresAt }, at('2030-01-01T00:00:00Z'))).toBe(false);
  });

  it('agrees with comparing instants (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e9, max: 1e9 }), (deltaMs) => {
        const now = new Date(expiresAt.getTime() + deltaMs);
        return isExpired({ status: 'open', expires_at: expiresAt }, now) === deltaMs >= 0;
      }),
    );
  });
});
