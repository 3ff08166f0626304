import type { Command } from 'commander';
import { systemClock } from '../clock.js';
import { loadKeyRing, rotateKeyRing } from '../tokens/key-ring.js';
import type { CliContext } from './context.js';
import { json } from './output.js';

export function keysCommands(program: Command, ctx: CliContext): void {
  const keys = program.command('keys').description('the bot signing key (Ed25519): show, rotate');

  keys
    .command('show')
    .description('print the active key (kid, did:key, public JWK) and the retired keys still trusted')
    .action(async () => {
      const config = ctx.config();
      const { ring } = await loadKeyRing(config.signingKey, config.retiredKeysFile, { create: false });
      ctx.output.out(
        json({
          active: { kid: ring.active.kid, did: ring.active.did, public_jwk: ring.active.publicJwk },
          retired: ring.retired.map((k) => ({ kid: k.kid, retired_at: k.retired_at })),
          trusted_dids: [...ring.trustedDids],
          retired_keys_file: config.retiredKeysFile,
        }),
      );
    });

  keys
    .command('rotate')
    .description(
      'generate a new signing key; the old public key moves to the retired keys file and stays trusted',
    )
    .action(async () => {
      const config = ctx.config();
      const { from, to } = await rotateKeyRing(config.signingKey, config.retiredKeysFile, systemClock);
      ctx.output.out(
        json({
          rotated: { from: { kid: from.kid, did: from.did }, to: { kid: to.kid, did: to.did } },
          note: 'restart running servers to sign with the new key; the old key stays trusted and in JWKS',
        }),
      );
    });
}
