import type { Command } from 'commander';
import { AppError } from '../errors.js';
import { engineFor, engineParts, policyServiceFor } from '../runtime.js';
import {
  checkActor,
  checkText,
  checkTokenRef,
  MAX_ADMIN_REASON,
  type TokenRevokedView,
  tokenRevokedView,
} from '../http/routes/admin-shapes.js';
import { introspectToken, revokeToken } from '../tokens/token-lifecycle.js';
import type { CliContext } from './context.js';
import { json } from './output.js';
import { onDatabaseOrServer } from './server-admin.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

export function tokenCommands(
  program: Command,
  ctx: CliContext,
  stdin: () => Promise<string> = readStdin,
): void {
  const token = program.command('token').description('job-scoped tokens (CST): introspect, revoke');

  token
    .command('introspect')
    .description('check a CST (signature, claims, revocation, single use); reads it from stdin unless given')
    .argument('[token]', 'compact token; prefer stdin, so it stays out of process lists and shell history')
    .option('--audience <aud>', 'expected audience')
    .action(async (arg: string | undefined, opts: { audience?: string }) => {
      const compact = arg && arg !== '-' ? arg : await stdin();
      await ctx.withRuntime(async (rt) => {
        const policies = policyServiceFor(rt, { readOnly: true });
        const r = await introspectToken(
          engineFor(engineParts(rt), policies),
          compact,
          opts.audience ? { audience: opts.audience } : {},
        );
        ctx.output.out(json(r.active ? { active: true, claims: r.claims, token_hash: r.tokenHash } : r));
        if (!r.active) throw new AppError(r.code, r.message);
      });
    });

  token
    .command('revoke')
    .description('revoke one CST by jti or token_hash (its job ends as revoked if the step had not finished)')
    .option('--jti <jti>', 'token id')
    .option('--token-hash <hex>', 'lowercase hex SHA-256 of the compact token')
    .requiredOption('--reason <text>', 'why (recorded in the job’s proof bundle)')
    .option('--actor <name>', 'who is revoking', ctx.defaultActor)
    .action(async (opts: { jti?: string; tokenHash?: string; reason: string; actor: string }) => {
      if ((opts.jti === undefined) === (opts.tokenHash === undefined)) {
        throw new AppError('ERR_VALIDATION', 'give exactly one of --jti and --token-hash');
      }
      checkTokenRef(opts);
      checkActor(opts.actor);
      checkText('the reason', opts.reason, { max: MAX_ADMIN_REASON, required: true });
      const ref = {
        ...(opts.jti ? { jti: opts.jti } : {}),
        ...(opts.tokenHash ? { tokenHash: opts.tokenHash } : {}),
      };
      const r = await onDatabaseOrServer(ctx, 'token revoke', {
        database: async (rt) => {
          const engine = engineFor(engineParts(rt), policyServiceFor(rt, { readOnly: true }));
          return tokenRevokedView(
            await revokeToken(engine, { ...ref, reason: opts.reason, actor: { admin: opts.actor } }),
          );
        },
        server: (api) =>
          api.post<TokenRevokedView>('/v1/admin/tokens/revoke', {
            ...(ref.jti ? { jti: ref.jti } : {}),
            ...(ref.tokenHash ? { token_hash: ref.tokenHash } : {}),
            actor: opts.actor,
            reason: opts.reason,
          }),
      });
      // As `revokeToken` returns it, whichever path ran.
      ctx.output.out(
        json({ jti: r.jti, jobId: r.job_id, alreadyRevoked: r.already_revoked, jobEnded: r.job_ended }),
      );
    });
}
