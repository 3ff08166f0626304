import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BundleFailure, type BundleTrust, verifyBundle } from '../../src/proofs/verify-bundle.js';
import { type SealedBundleApp, sealedBundleApp } from '../browser/sealed-bundle-app.js';
import { dialectName } from '../helpers/db.js';
import { U } from '../helpers/engine.js';
import { testGateway } from '../helpers/receipts.js';
import { eventOf, forge, insertEvent, type Obj } from './adversarial-forge.js';

/**
 * Holes H8's adversarial review found in the server's verifier (issue 10): bundles whose hashes,
 * links and signatures all hold (forged with the trusted keys), which passed although the
 * approvals they record do not satisfy the two-person rule or the tokens they record were
 * minted outside the job's lifecycle. The job: post-summary needs 2 approvals from distinct
 * groups (ops-oncall, sec-reviewers); alice and chioma approved it; every step ran.
 */
describe(`verifyBundle: counted approvals and token lifecycle read from the chain (${dialectName})`, () => {
  let s: SealedBundleApp;
  let trust: BundleTrust;
  beforeAll(async () => {
    s = await sealedBundleApp();
    trust = { trustsSigner: s.engine.ctx.keyRing.trusts, gatewaySigners: s.engine.ctx.gatewaySigners };
  }, 180_000);
  afterAll(async () => {
    await s?.close();
  });

  const forged = (edit: (p: Obj) => void) =>
    JSON.parse(forge(s.stored, { key: s.engine.ctx.keyRing.active, gateway: testGateway }, edit)) as unknown;
  const chain = (p: Obj) => p.event_chain as Obj[];
  const step = (p: Obj, id: string) => (p.metadata.claw_approvals.steps as Obj[]).find((x) => x.step === id)!;
  /** The events of this type whose payload names `stepId`. */
  const stepEvent = (p: Obj, type: string, stepId: string) => {
    const all = chain(p).filter((e) => e.event_type === type);
    const nth = all.findIndex((_e, i) => eventOf(p, type, i).body.step === stepId);
    return eventOf(p, type, nth);
  };
  const gatedMint = (p: Obj) => stepEvent(p, 'token_minted', 'post-summary');
  const counted = (p: Obj) => gatedMint(p).body.counted as Obj[];
  /** As a mint chained before snapshots existed: no `approval` key, sealed as unrecorded. */
  const legacy = (p: Obj) => {
    delete gatedMint(p).body.approval;
    Object.assign(step(p, 'post-summary'), {
      approval: null,
      approval_unrecorded: 'MINTED_BEFORE_SNAPSHOTS',
    });
  };
  const dropReceiptOf = (p: Obj, user: string) => {
    p.human_approval_receipts = (p.human_approval_receipts as Obj[]).filter(
      (r) => r.approver_subject !== user,
    );
  };
  /** post-summary minted on alice's approval alone: chioma gone from the mint, snapshot and receipts. */
  const aliceAlone = (p: Obj) => {
    gatedMint(p).body.approval?.approvers.pop();
    counted(p).pop();
    step(p, 'post-summary').approval?.approvers.pop();
    dropReceiptOf(p, U.chioma);
  };
  /** The verdict fails with `reason` at check `at`, every check before it passed. */
  const failsAt = (env: unknown, reason: BundleFailure, at: string, words: string) => {
    const v = verifyBundle(env, trust);
    expect(v).toMatchObject({ ok: false, reason, cbReason: null });
    expect(v.ok || v.message).toContain(words);
    expect(v.checks.at(-1)).toMatchObject({ id: at, ok: false, reason });
    expect(v.checks.slice(0, -1).every((c) => c.ok)).toBe(true);
  };

  it('control: the sealed bundle passes both new checks, saying what each read', () => {
    const v = verifyBundle(JSON.parse(s.stored), trust);
    expect(v).toMatchObject({ ok: true });
    expect(v.checks.find((c) => c.id === 'ours.token_lifecycle')).toEqual({
      id: 'ours.token_lifecycle',
      ok: true,
      message: "4 tokens minted for planned steps before the job's end, each used only after its mint",
    });
    expect(v.checks.find((c) => c.id === 'ours.counted_approvals')).toEqual({
      id: 'ours.counted_approvals',
      ok: true,
      message:
        'the approvals each gated mint counted satisfy job_created\'s rule, recorded for the step before the mint and not withdrawn: "post-summary"',
    });
  });

  describe('a gated mint presented as sealed before snapshots is held to the rule job_created pinned', () => {
    it('passes with both approvers, saying how they were found in their groups is not provable', () => {
      const v = verifyBundle(forged(legacy), trust);
      expect(v).toMatchObject({ ok: true });
      expect(v.checks.find((c) => c.id === 'ours.counted_approvals')!.message).toContain(
        '"post-summary" minted before snapshots: how each approver was found in their group was not recorded and is not provable',
      );
    });

    const forgeries: [string, BundleFailure, string, (p: Obj) => void][] = [
      [
        "on alice's approval alone (H8: the two-person check switched off)",
        'APPROVAL_QUORUM_NOT_MET',
        'step "post-summary": its token_minted event counted 1 of 2 required approvals',
        aliceAlone,
      ],
      [
        'with chioma counted for ops-oncall, as alice',
        'APPROVAL_GROUPS_NOT_DISTINCT',
        'counted two approvers for one group although the rule asks for distinct groups',
        (p) => void (counted(p).find((c) => c.user_id === U.chioma)!.group = 'ops-oncall'),
      ],
      [
        'with chioma counted for a group the rule does not allow',
        'APPROVAL_SNAPSHOT_INVALID',
        `counted "${U.chioma}" for "platform-admins", a group the rule does not allow`,
        (p) => void (counted(p).find((c) => c.user_id === U.chioma)!.group = 'platform-admins'),
      ],
      [
        'with alice made the requester in job_created and the metadata',
        'APPROVAL_BY_REQUESTER',
        `counted the requester "${U.alice}"`,
        (p) => {
          eventOf(p, 'job_created').body.requester_id = U.alice;
          p.metadata.claw_approvals.requester_id = U.alice;
        },
      ],
      [
        'with alice counted twice',
        'APPROVAL_SNAPSHOT_INVALID',
        `its token_minted event counted "${U.alice}" twice`,
        (p) => {
          counted(p).splice(1, 1, { ...counted(p)[0] });
          dropReceiptOf(p, U.chioma);
        },
      ],
      [
        'with a counted entry that names no decision',
        'APPROVAL_SNAPSHOT_INVALID',
        "its token_minted event's counted[1].decision_id",
        (p) => {
          counted(p)[1]!.decision_id = null;
          dropReceiptOf(p, U.chioma);
        },
      ],
    ];
    it.each(forgeries)('fails one %s: %s', (_what, reason, words, edit) => {
      failsAt(
        forged((p) => {
          legacy(p);
          edit(p);
        }),
        reason,
        'ours.counted_approvals',
        words,
      );
    });
  });

  describe('an approval withdrawn before the mint does not count', () => {
    /** alice's approval_withdrawn event, inserted before the chain event `before`. */
    const withdrawAlice = (p: Obj, before: (p: Obj) => Obj) => {
      const alice = stepEvent(p, 'approval_recorded', 'post-summary').body;
      expect(alice.user_id).toBe(U.alice);
      insertEvent(p, chain(p).indexOf(before(p)), 'approval_withdrawn', {
        decision_id: alice.decision_id,
        detected_by: 'recheck',
        post_id: alice.post_id,
        step: alice.step,
        user_id: alice.user_id,
        why: 'deleted',
      });
    };

    it.each<[string, (p: Obj) => void]>([
      ['with its snapshot', () => {}],
      ['sealed before snapshots', legacy],
    ])('fails a mint %s that counted it: APPROVAL_WITHDRAWN_COUNTED', (_what, shape) => {
      const env = forged((p) => {
        shape(p);
        withdrawAlice(p, (q) => gatedMint(q).header);
      });
      failsAt(
        env,
        'APPROVAL_WITHDRAWN_COUNTED',
        'ours.counted_approvals',
        `step "post-summary": its token_minted event counted the approval of "${U.alice}", withdrawn before the mint`,
      );
    });

    it('control: withdrawn after the mint, the mint stands', () => {
      const env = forged((p) =>
        withdrawAlice(p, (q) => chain(q)[chain(q).indexOf(gatedMint(q).header) + 1]!),
      );
      expect(verifyBundle(env, trust)).toMatchObject({ ok: true });
    });
  });

  describe('tokens minted or used outside the job lifecycle', () => {
    const forgeries: [string, BundleFailure, string, (p: Obj) => void][] = [
      [
        'a token minted for a step the plan does not have',
        'PLAN_BINDING_MISMATCH',
        'mints a token for step "ghost", which job_created did not plan',
        (p) => {
          const m = gatedMint(p);
          const ghost = structuredClone(m.body);
          Object.assign(ghost, { step: 'ghost', jti: 'ghost-jti', counted: [] });
          ghost.approval.approvers = [];
          insertEvent(p, chain(p).indexOf(m.header) + 1, 'token_minted', ghost);
        },
      ],
      [
        'a second token for a planned step, minted after the job ended',
        'EVENT_CHAIN_INVALID',
        'mints a token after job_ended',
        (p) => {
          const again = { ...stepEvent(p, 'token_minted', 'search-kb').body, jti: 'late-jti' };
          chain(p).push({
            ...chain(p).at(-1)!,
            event_hash_b64u: 'placeholder-late',
            event_id: 'evt_late',
            event_type: 'token_minted',
          });
          (p.metadata.event_payloads as Obj[]).push({ event_id: 'evt_late', payload: again });
        },
      ],
      [
        "the gated step's mint moved after the job's end (its claim now precedes it)",
        'EVENT_CHAIN_INVALID',
        'before any token_minted event of it',
        (p) => {
          const mint = gatedMint(p).header;
          chain(p).splice(chain(p).indexOf(mint), 1);
          chain(p).push(mint);
        },
      ],
      [
        "a token's claim moved before its mint",
        'EVENT_CHAIN_INVALID',
        'before any token_minted event of it',
        (p) => {
          const claim = stepEvent(p, 'token_claimed', 'post-summary').header;
          chain(p).splice(chain(p).indexOf(claim), 1);
          chain(p).splice(chain(p).indexOf(gatedMint(p).header), 0, claim);
        },
      ],
      [
        "a token's redemption moved after the job's end",
        'EVENT_CHAIN_INVALID',
        'after job_ended',
        (p) => {
          const redeem = stepEvent(p, 'token_redeemed', 'post-summary').header;
          chain(p).splice(chain(p).indexOf(redeem), 1);
          chain(p).push(redeem);
        },
      ],
      [
        "a redemption that names another step's token",
        'EVENT_CHAIN_INVALID',
        'for another step than it was minted for',
        (p) => {
          stepEvent(p, 'token_redeemed', 'post-summary').body.jti = stepEvent(
            p,
            'token_minted',
            'search-kb',
          ).body.jti;
        },
      ],
    ];
    it.each(forgeries)('fails %s: %s', (_what, reason, words, edit) => {
      failsAt(forged(edit), reason, 'ours.token_lifecycle', words);
    });
  });
});
