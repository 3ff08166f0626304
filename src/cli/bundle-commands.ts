import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { AppError } from '../errors.js';
import { BUNDLE_ID } from '../http/routes/bundles.js';
import { getVerifiedPolicy } from '../policy/registry.js';
import { type BundleVerdict, verifyBundle } from '../proofs/verify-bundle.js';
import { loadKeyRing } from '../tokens/key-ring.js';
import type { CliContext } from './context.js';
import { json } from './output.js';

interface Allowlist {
  agent_did?: string;
  bundle_signer_dids?: string[];
  gateway_receipt_signer_dids?: string[];
}

async function readAllowlist(file: string | undefined): Promise<Allowlist> {
  if (!file) return {};
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Allowlist;
  } catch (err) {
    throw new AppError('ERR_BAD_REQUEST', `allowlist ${file} is not readable JSON`, { cause: err });
  }
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

/**
 * Checks only the database can answer for a bundle stored here: its policy is registered and
 * verifies, and every CST in it is the one issued (same token_hash).
 */
type DbCheck =
  { ok: true } | { ok: false; reason: 'POLICY_UNVERIFIABLE' | 'TOKEN_BINDING_MISMATCH'; message: string };

export function bundleCommands(program: Command, ctx: CliContext): void {
  const bundle = program.command('bundle').description('proof bundles: verify, show');

  bundle
    .command('verify')
    .description('re-check a proof bundle (file, or pb_ id from the database) and print a reason code')
    .argument('<file-or-id>', 'path to a bundle JSON file, or a bundle id')
    .option(
      '--allowlist <file>',
      'Claw Bureau allowlist: agent_did (bundle signer), gateway_receipt_signer_dids',
    )
    .option('--trust <did...>', 'additional trusted bundle signer did:key(s)')
    .option('--json', 'print the verdict as JSON')
    .action(async (target: string, opts: { allowlist?: string; trust?: string[]; json?: boolean }) => {
      const allow = await readAllowlist(opts.allowlist);
      const signers = new Set([
        ...(opts.trust ?? []),
        ...(allow.agent_did ? [allow.agent_did] : []),
        ...(allow.bundle_signer_dids ?? []),
      ]);
      const config = ctx.config();
      const gateways = new Set([...config.gatewaySignerDids, ...(allow.gateway_receipt_signer_dids ?? [])]);
      // The bot's own keys are trusted when this machine has them (a retired one only for older bundles).
      let ringTrusts: ((did: string, at: Date) => boolean) | null = null;
      try {
        ringTrusts = (await loadKeyRing(config.signingKey, config.retiredKeysFile, { create: false })).ring
          .trusts;
      } catch {
        ringTrusts = null;
      }
      const trust = {
        trustsSigner: (did: string, at: Date) => signers.has(did) || (ringTrusts?.(did, at) ?? false),
        gatewaySigners: gateways,
      };

      let verdict: BundleVerdict;
      let dbCheck: DbCheck = { ok: true };
      if (await isFile(target)) {
        let envelope: unknown;
        try {
          envelope = JSON.parse(await fs.readFile(target, 'utf8'));
        } catch (err) {
          throw new AppError('ERR_BUNDLE_INVALID', `BUNDLE_ENVELOPE_MALFORMED: ${target} is not JSON`, {
            cause: err,
          });
        }
        verdict = verifyBundle(envelope, trust);
      } else if (BUNDLE_ID.test(target)) {
        ({ verdict, dbCheck } = await ctx.withRuntime(async (rt) => {
          const row = await rt.database.db
            .selectFrom('bundles')
            .selectAll()
            .where('bundle_id', '=', target)
            .executeTakeFirst();
          if (!row)
            throw new AppError('ERR_BUNDLE_NOT_FOUND', `no bundle ${target} in ${rt.database.description}`);
          const envelope = JSON.parse(row.envelope) as {
            payload: {
              metadata?: {
                claw_approvals?: {
                  policy?: { policy_hash_b64u?: string };
                  steps?: { cst: { jti: string; token_hash: string } | null }[];
                };
              };
            };
          };
          const v = verifyBundle(envelope, trust);
          if (!v.ok) return { verdict: v, dbCheck: { ok: true } as DbCheck };
          const ours = envelope.payload.metadata?.claw_approvals;
          let check: DbCheck = { ok: true };
          if (ours?.policy?.policy_hash_b64u) {
            try {
              await getVerifiedPolicy(rt.database.db, ours.policy.policy_hash_b64u, rt.keyRing.trusts);
            } catch (err) {
              check = { ok: false, reason: 'POLICY_UNVERIFIABLE', message: (err as Error).message };
            }
          }
          for (const s of ours?.steps ?? []) {
            if (!check.ok || !s.cst) continue;
            const t = await rt.database.db
              .selectFrom('tokens')
              .select('token_hash')
              .where('jti', '=', s.cst.jti)
              .executeTakeFirst();
            if (t?.token_hash !== s.cst.token_hash) {
              check = {
                ok: false,
                reason: 'TOKEN_BINDING_MISMATCH',
                message: `CST ${s.cst.jti} is not the token issued`,
              };
            }
          }
          return { verdict: v, dbCheck: check };
        }));
      } else {
        throw new AppError('ERR_BUNDLE_NOT_FOUND', `${target} is neither a file nor a bundle id (pb_…)`);
      }
      const failed = !verdict.ok ? verdict : !dbCheck.ok ? dbCheck : null;
      if (failed) {
        ctx.output.out(
          opts.json
            ? json({ ok: false, reason: failed.reason, message: failed.message })
            : `FAIL ${failed.reason}: ${failed.message}`,
        );
        throw new AppError('ERR_BUNDLE_INVALID', `${failed.reason}: ${failed.message}`);
      }
      if (!verdict.ok) return;
      ctx.output.out(
        opts.json
          ? json({ ...verdict, reason: 'OK' })
          : `OK ${verdict.bundleId}: signed by ${verdict.signerDid}; ${verdict.events} chained events, ` +
              `${verdict.approvals} approval receipts, ${verdict.receipts} gateway receipts verified`,
      );
    });

  bundle
    .command('show')
    .description('print a stored bundle exactly as sealed')
    .argument('<id>', 'bundle id (pb_…)')
    .action(async (id: string) => {
      if (!BUNDLE_ID.test(id)) throw new AppError('ERR_BUNDLE_NOT_FOUND', `${id} is not a bundle id`);
      await ctx.withRuntime(async (rt) => {
        const row = await rt.database.db
          .selectFrom('bundles')
          .select('envelope')
          .where('bundle_id', '=', id)
          .executeTakeFirst();
        if (!row) throw new AppError('ERR_BUNDLE_NOT_FOUND', `no bundle ${id}`);
        ctx.output.out(row.envelope);
      });
    });
}
