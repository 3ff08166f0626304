import type { Command } from 'commander';
import { AppError } from '../errors.js';
import { listSigningKeys, registerActiveKey } from '../tokens/key-ring.js';
import { generateSigningJwk, signingKeyFromJwk, writeKeyFile } from '../tokens/signing-key.js';
import type { CliContext } from './context.js';
import { json } from './output.js';

export function keysCommands(program: Command, ctx: CliContext): void {
  const keys = program.command('keys').description('the bot signing key (Ed25519): show, rotate');

  keys
    .command('show')
    .description(
      'print the active key (kid, did:key, public JWK) and every key still published for verification',
    )
    .action(async () => {
      await ctx.withRuntime(async (rt) => {
        const all = await listSigningKeys(rt.database.db);
        ctx.output.out(
          json({
            active: { kid: rt.key.kid, did: rt.key.did, public_jwk: rt.key.publicJwk },
            published: all.map((k) => ({
              kid: k.kid,
              did: k.did,
              created_at: new Date(k.created_at).toISOString(),
              retired_at: k.retired_at ? new Date(k.retired_at).toISOString() : null,
            })),
          }),
        );
      });
    });

  keys
    .command('rotate')
    .description(
      'generate a new signing key; the old public key stays published so what it signed still verifies',
    )
    .action(async () => {
      const source = ctx.config().signingKey;
      if (source.kind === 'jwk') {
        throw new AppError(
          'ERR_KEY_INVALID',
          'the signing key comes from SIGNING_KEY_JWK: replace it there; the new key is published at the next start',
        );
      }
      await ctx.withRuntime(async (rt) => {
        const next = generateSigningJwk();
        const nextKey = signingKeyFromJwk(next, 'new key');
        // Publish first: if writing the file fails, the next start re-activates the old key.
        await registerActiveKey(rt.database.db, nextKey, rt.clock);
        await writeKeyFile(source.file, next, { replace: true });
        ctx.output.out(
          json({
            rotated: {
              from: { kid: rt.key.kid, did: rt.key.did },
              to: { kid: nextKey.kid, did: nextKey.did },
            },
            note: 'restart running servers to sign with the new key; the old key stays in JWKS for verification',
          }),
        );
      });
    });
}
