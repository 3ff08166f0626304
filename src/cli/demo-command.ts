import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { didKeyFromPublicKey } from '../crypto/did-key.js';
import { verifyEnvelope } from '../crypto/envelope.js';
import { fromB64u, jcsHashB64u } from '../crypto/hash.js';
import { AppError } from '../errors.js';
import { startServer } from '../server.js';
import type { CliContext } from './context.js';

/**
 * A guided run of what this build does, on embedded defaults in a throwaway data directory:
 * start the server, load and sign the shipped policies, fetch each one back over HTTP and
 * verify it the way an outside auditor would (JWKS -> did:key -> Ed25519 over the hash).
 */
export function demoCommand(program: Command, ctx: CliContext): void {
  program
    .command('demo')
    .description('start on embedded defaults, publish the shipped policies and verify them over HTTP')
    .option('--keep', 'leave the server running and print its URLs')
    .action(async (opts: { keep?: boolean }) => {
      const base = ctx.config();
      const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'claw-demo-'));
      const config = {
        ...base,
        databaseUrl: null,
        dataDir,
        port: 0,
        host: '127.0.0.1',
        signingKey: { kind: 'generated' as const, file: path.join(dataDir, 'keys', 'signing-key.jwk.json') },
      };
      const log = ctx.serviceLog().child({ demo: true });
      log.level = opts.keep ? base.logLevel : 'warn';
      const server = await startServer(config, log, { handleSignals: !!opts.keep });
      const say = ctx.output.out;
      try {
        say(`claw-approvals demo — embedded PGlite in ${dataDir}, server at ${server.url}\n`);
        const get = async (p: string) => {
          const res = await fetch(`${server.url}${p}`);
          return { status: res.status, body: (await res.json()) as Record<string, unknown> };
        };
        const jwks = (await get('/.well-known/jwks.json')).body as { keys: { kid: string; x: string }[] };
        say(`1. Signing key (generated on first start, mode 0600): kid ${server.runtime.keyRing.active.kid}`);
        say(`   did:key ${server.runtime.keyRing.active.did}\n`);
        const snap = server.policies.current();
        if (!snap) throw new AppError('ERR_INTERNAL', 'policies did not load');
        say('2. Policies in POLICIES_DIR, validated, hashed (RFC 8785 JCS + SHA-256) and registered:');
        for (const cand of snap.resolution.active.values()) {
          const channels = [...snap.resolution.channels]
            .filter(([, b]) => b.policyName === cand.name)
            .map(([c]) => c);
          say(`   ${cand.name.padEnd(36)} ${cand.hash}  channels: ${channels.join(', ')}`);
        }
        for (const p of snap.problems) say(`   problem: ${p}`);
        say('\n3. Each policy fetched back from GET /v1/wpc/<hash> and verified offline:');
        let failures = 0;
        for (const cand of snap.resolution.active.values()) {
          const { status, body } = await get(`/v1/wpc/${cand.hash}`);
          const envelope = body.envelope as { signer_did: string };
          const jwk = jwks.keys.find((k) => didKeyFromPublicKey(fromB64u(k.x)) === envelope?.signer_did);
          const check = verifyEnvelope(envelope, {
            type: 'work_policy_contract',
            hashPayload: jcsHashB64u,
            trustedSigners: new Set(jwks.keys.map((k) => didKeyFromPublicKey(fromB64u(k.x)))),
          });
          const ok = status === 200 && check.ok && !!jwk;
          if (!ok) failures++;
          say(
            `   ${ok ? 'verified' : 'FAILED  '} ${cand.name}: HTTP ${status}, signer in JWKS as kid ${jwk?.kid ?? '-'}${check.ok ? '' : `, ${check.reason}`}`,
          );
        }
        const tampered = await get(`/v1/wpc/${'A'.repeat(43)}`);
        say(
          `\n4. Unknown hash -> HTTP ${tampered.status} ${String((tampered.body.error as { code?: string })?.code)}`,
        );
        const ready = await get('/readyz');
        say(`5. /readyz -> HTTP ${ready.status}`);
        say(
          '\nMattermost conversations (plans, approvals, tokens, proof bundles) are not part of this build yet.',
        );
        if (failures)
          throw new AppError('ERR_INTERNAL', `${failures} policy envelope(s) failed verification`);
        if (opts.keep) {
          say(
            `\nRunning. Try:\n  curl ${server.url}/readyz\n  curl ${server.url}/.well-known/jwks.json\nCtrl-C to stop.`,
          );
          await new Promise<never>(() => {});
        }
      } finally {
        if (!opts.keep) {
          await server.stop();
          await fs.rm(dataDir, { recursive: true, force: true });
        }
      }
    });
}
