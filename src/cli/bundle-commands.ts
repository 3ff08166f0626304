import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { B64U_SHA256 } from '../crypto/hash.js';
import { AppError } from '../errors.js';
import { BUNDLE_ID } from '../http/routes/bundles.js';
import { getVerifiedPolicy } from '../policy/registry.js';
import { policyHashNamedBy } from '../proofs/bundle-policy.js';
import {
  bundleTrust,
  checkedDidKey,
  signersFromAllowlist,
  signersFromJwks,
  type TrustedGateway,
  type TrustedSigner,
} from '../proofs/trust-sources.js';
import {
  type BundleFailure,
  type BundleVerdict,
  type VerifyCheck,
  verifyBundle,
} from '../proofs/verify-bundle.js';
import { escapeControls, escapeControlsInJson, quote } from '../proofs/verify/check.js';
import { firstDuplicateKey } from '../proofs/verify/duplicate-keys.js';
import type { Runtime } from '../runtime.js';
import type { CliContext } from './context.js';
import { json } from './output.js';
import {
  fetchSource,
  httpUrl,
  readFileSource,
  readSource,
  shownUrl,
  type SourceText,
} from './read-source.js';

/**
 * One check the verdict rests on, as `--json` prints it: the verifier's, or one only this
 * command can make (the link names the bundle, this server's database agrees).
 */
type Check = Omit<VerifyCheck, 'reason'> & {
  reason?: BundleFailure | 'BUNDLE_ID_MISMATCH' | 'POLICY_UNVERIFIABLE';
};

type Failed = { reason: string; cbReason: string | null; message: string };

interface Trust {
  signers: TrustedSigner[];
  gateways: TrustedGateway[];
}

interface VerifyOptions {
  jwks?: string[];
  trust?: string[];
  gateway?: string[];
  allowlist?: string;
  policy?: string;
  json?: boolean;
}

type Target = { kind: 'url'; url: URL } | { kind: 'file'; file: string } | { kind: 'database'; id: string };

const collect = (value: string, previous: string[] = []) => [...previous, value];

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

async function targetOf(arg: string): Promise<Target> {
  const url = httpUrl(arg, 'bundle');
  if (url) return { kind: 'url', url };
  if (await isFile(arg)) return { kind: 'file', file: arg };
  if (BUNDLE_ID.test(arg)) return { kind: 'database', id: arg };
  throw new AppError(
    'ERR_BUNDLE_NOT_FOUND',
    `${arg} is neither a file, an http(s) URL nor a bundle id (pb_…)`,
  );
}

/** The JWKS, `--trust`, `--gateway` and allowlist the reviewer gave; nothing from this machine. */
async function reviewerTrust(opts: VerifyOptions, warn: (text: string) => void): Promise<Trust> {
  const signers: TrustedSigner[] = (opts.trust ?? []).map((did) => ({
    did: checkedDidKey(did, '--trust'),
    source: '--trust',
    retiredAt: null,
  }));
  const gateways: TrustedGateway[] = (opts.gateway ?? []).map((did) => ({
    did: checkedDidKey(did, '--gateway'),
    source: '--gateway',
  }));
  if (opts.allowlist) {
    const read = await readFileSource(opts.allowlist, {
      what: 'allowlist',
      accept: 'application/json',
      failure: 'ERR_BAD_REQUEST',
    });
    const listed = signersFromAllowlist(parseJson(read, 'ERR_BAD_REQUEST'), `allowlist ${read.shown}`);
    signers.push(...listed.signers);
    gateways.push(...listed.gateways);
  }
  for (const arg of opts.jwks ?? []) {
    const read = await readSource(arg, {
      what: 'JWKS',
      accept: 'application/jwk-set+json, application/json',
      failure: 'ERR_KEY_UNREADABLE',
    });
    if (read.url?.protocol === 'http:' && !isLoopback(read.url))
      warn(`warning: the JWKS ${read.shown} came over plain http: anyone on the way could have replaced it`);
    signers.push(...signersFromJwks(parseJson(read, 'ERR_KEY_INVALID'), `jwks ${read.shown}`));
  }
  return { signers, gateways };
}

function parseJson(read: SourceText, code: 'ERR_BAD_REQUEST' | 'ERR_KEY_INVALID'): unknown {
  try {
    return JSON.parse(read.text);
  } catch (cause) {
    throw new AppError(code, `${read.shown} is not JSON${typeOf(read)}`, { cause });
  }
}

const typeOf = (read: SourceText) => (read.contentType ? ` (Content-Type ${read.contentType})` : '');

function isLoopback(url: URL): boolean {
  return /^(localhost|127(\.\d+){3}|\[::1\])$/.test(url.hostname);
}

/** `--json`: the trust each verdict rested on, by source. */
function describeTrust(trust: Trust) {
  return {
    bundle_signers: trust.signers.map((s) => ({
      did: s.did,
      source: s.source,
      retired_at: s.retiredAt?.toISOString() ?? null,
    })),
    gateway_signers: trust.gateways.map((g) => ({ did: g.did, source: g.source })),
  };
}

/**
 * A bundle fetched by its link must be the bundle the link names: a server (or anyone on a
 * plain-http path) answering with another genuine bundle, say of a job whose approvals were in
 * order, is refused.
 */
function checkNamedId(named: string, bundleId: string): Check {
  return bundleId === named
    ? { id: 'target.bundle_id', ok: true, message: `the bundle is ${named}, as the link names` }
    : {
        id: 'target.bundle_id',
        ok: false,
        reason: 'BUNDLE_ID_MISMATCH',
        cbReason: null,
        message: `asked for ${named} but got ${bundleId}`,
      };
}

/**
 * Checks only this server's database can answer for a bundle stored here: its policy is
 * registered and verifies, and every CST in it is the one issued (same token_hash).
 */
async function databaseChecks(
  rt: Runtime,
  envelope: unknown,
  registered: RegisteredPolicy,
): Promise<Check[]> {
  const ours = (
    envelope as {
      payload?: {
        metadata?: {
          claw_approvals?: { steps?: { cst: { jti: string; token_hash: string } | null }[] };
        };
      };
    }
  ).payload?.metadata?.claw_approvals;
  const checks: Check[] = [];
  if (registered) {
    checks.push(
      'envelope' in registered
        ? { id: 'database.policy', ok: true, message: 'the policy is registered here and verifies' }
        : {
            id: 'database.policy',
            ok: false,
            reason: 'POLICY_UNVERIFIABLE',
            cbReason: null,
            message: registered.error,
          },
    );
  }
  for (const s of ours?.steps ?? []) {
    if (!s.cst) continue;
    const t = await rt.database.db
      .selectFrom('tokens')
      .select('token_hash')
      .where('jti', '=', s.cst.jti)
      .executeTakeFirst();
    checks.push(
      t?.token_hash === s.cst.token_hash
        ? { id: `database.token.${s.cst.jti}`, ok: true, message: `CST ${s.cst.jti} is the token issued` }
        : {
            id: `database.token.${s.cst.jti}`,
            ok: false,
            reason: 'TOKEN_BINDING_MISMATCH',
            cbReason: null,
            message: `CST ${s.cst.jti} is not the token issued`,
          },
    );
  }
  return checks;
}

interface Outcome {
  verdict: BundleVerdict;
  extra: Check[];
  trust: Trust;
  target: { kind: Target['kind']; ref: string };
  /** Whether the signed policy was given to the verifier; it checks it whenever it is. */
  policySupplied: boolean;
}

/** A bundle text refused before the verifier, reported like any other failure. */
function malformedText(id: string, cbReason: string | null, message: string): BundleVerdict {
  const reason = 'BUNDLE_ENVELOPE_MALFORMED';
  return { ok: false, reason, cbReason, message, checks: [{ id, ok: false, reason, cbReason, message }] };
}

/**
 * The bundle's text, parsed; a failed verdict when it is not JSON, or when an object in it
 * repeats a key (JSON.parse keeps the last value, a person reading the file sees the first:
 * the verdict would be over a bundle other than the one they read). Claw Bureau's verifier
 * makes no such check, hence no cbReason for it.
 */
function parseBundleText(
  text: string,
  shown: string,
  read?: SourceText,
): { envelope: unknown } | BundleVerdict {
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch {
    return malformedText(
      'input.json',
      'MALFORMED_ENVELOPE',
      `${shown} is not JSON${read ? typeOf(read) : ''}`,
    );
  }
  const duplicate = firstDuplicateKey(text);
  if (duplicate)
    return malformedText(
      'input.duplicate_keys',
      null,
      `duplicate key ${quote(duplicate.key)} in ${duplicate.path} of ${shown}: JSON.parse keeps the last value, a reader of the file sees the first`,
    );
  return { envelope };
}

/** `GET /v1/wpc/:hash` answers `{ok, policy_hash_b64u, envelope}`; a file may hold either form. */
function policyEnvelopeOf(parsed: unknown): unknown {
  const wrapped = parsed as { envelope?: unknown } | null;
  return wrapped && typeof wrapped === 'object' && 'envelope' in wrapped ? wrapped.envelope : parsed;
}

/**
 * The signed policy the bundle names, so the verifier can recompute each gated step's rule
 * from it (`ours.policy_rules`): the one given with `--policy`, else, for a bundle link, the
 * one its server publishes at `/v1/wpc/<hash>`. A link's policy that cannot be fetched, or
 * whose answer is not a signed policy at all (a server answering every path with the bundle),
 * leaves that check not made (said on the OK line and on stderr); a `--policy` that cannot be
 * read is an error. Either way the verifier checks its hash, signature and signer.
 */
async function suppliedPolicy(
  opts: VerifyOptions,
  target: Exclude<Target, { kind: 'database' }>,
  envelope: unknown,
  warn: (text: string) => void,
): Promise<unknown> {
  const spec = { what: 'policy', accept: 'application/json', failure: 'ERR_WPC_NOT_FOUND' } as const;
  if (opts.policy) {
    const read = await readSource(opts.policy, spec);
    try {
      return policyEnvelopeOf(JSON.parse(read.text));
    } catch (cause) {
      throw new AppError('ERR_BAD_REQUEST', `policy ${read.shown} is not JSON${typeOf(read)}`, { cause });
    }
  }
  const hash = policyHashNamedBy(envelope);
  if (target.kind !== 'url' || !hash || !B64U_SHA256.test(hash)) return undefined;
  const url = new URL(`/v1/wpc/${hash}`, target.url);
  let problem: string;
  try {
    const policy = policyEnvelopeOf(JSON.parse((await fetchSource(url, spec)).text));
    if ((policy as { envelope_type?: unknown } | null)?.envelope_type === 'work_policy_contract')
      return policy;
    problem = 'the answer is not a signed policy';
  } catch (err) {
    problem = (err as Error).message;
  }
  warn(`warning: the policy ${shownUrl(url)} could not be read (${problem}); its rules were not recomputed`);
  return undefined;
}

/** A file or URL: only the reviewer's trust inputs and the bundle are read; no config, key or database. */
async function verifyOffline(
  target: Exclude<Target, { kind: 'database' }>,
  trust: Trust,
  opts: VerifyOptions,
  warn: (text: string) => void,
): Promise<Outcome> {
  const spec = { what: 'bundle', accept: 'application/json', failure: 'ERR_BUNDLE_NOT_FOUND' } as const;
  const read =
    target.kind === 'url' ? await fetchSource(target.url, spec) : await readFileSource(target.file, spec);
  const ref = read.shown;
  const parsed = parseBundleText(read.text, ref, read);
  if (!('envelope' in parsed))
    return { verdict: parsed, extra: [], trust, target: { kind: target.kind, ref }, policySupplied: false };
  const { envelope } = parsed;
  const policy = await suppliedPolicy(opts, target, envelope, warn);
  const verdict = verifyBundle(envelope, bundleTrust(trust.signers, trust.gateways), { policy });
  const last = target.kind === 'url' ? (target.url.pathname.split('/').at(-1) ?? '') : '';
  const extra = verdict.ok && BUNDLE_ID.test(last) ? [checkNamedId(last, verdict.bundleId)] : [];
  return {
    verdict,
    extra,
    trust,
    target: { kind: target.kind, ref },
    policySupplied: policy !== undefined,
  };
}

/** A pb_ id on the server machine: this server's key ring and gateways are trusted too, and its database is asked. */
/** The registry's answer for the policy a stored bundle names: its signed envelope, or why not. */
type RegisteredPolicy = { envelope: unknown } | { error: string } | null;

async function registeredPolicy(rt: Runtime, envelope: unknown): Promise<RegisteredPolicy> {
  const hash = policyHashNamedBy(envelope);
  if (hash === null) return null;
  try {
    return { envelope: await getVerifiedPolicy(rt.database.db, hash, rt.keyRing.trusts) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

async function verifyStored(ctx: CliContext, id: string, given: Trust): Promise<Outcome> {
  return ctx.withRuntime(async (rt) => {
    const trust: Trust = {
      signers: [...given.signers, ...signersFromJwks(rt.keyRing.jwks, 'key ring of this server')],
      gateways: [
        ...given.gateways,
        ...rt.config.gatewaySignerDids.map((did) => ({ did, source: 'GATEWAY_SIGNER_DIDS of this server' })),
      ],
    };
    const row = await rt.database.db
      .selectFrom('bundles')
      .select('envelope')
      .where('bundle_id', '=', id)
      .executeTakeFirst();
    if (!row) throw new AppError('ERR_BUNDLE_NOT_FOUND', `no bundle ${id} in ${rt.database.description}`);
    const target = { kind: 'database' as const, ref: id };
    const parsed = parseBundleText(row.envelope, `bundle ${id}`);
    if (!('envelope' in parsed)) return { verdict: parsed, extra: [], trust, target, policySupplied: false };
    const { envelope } = parsed;
    // Read once: the verifier recomputes the rules from it, and the database check reports it.
    const registered = await registeredPolicy(rt, envelope);
    const policy = registered && 'envelope' in registered ? registered.envelope : undefined;
    const verdict = verifyBundle(envelope, bundleTrust(trust.signers, trust.gateways), { policy });
    const extra = verdict.ok
      ? [checkNamedId(id, verdict.bundleId), ...(await databaseChecks(rt, envelope, registered))]
      : [];
    return { verdict, extra, trust, target, policySupplied: policy !== undefined };
  });
}

type Result = { ok: true; verdict: Extract<BundleVerdict, { ok: true }> } | { ok: false; failed: Failed };

/** The first failure: the verifier's, else a check of the link or of this server's database. */
function resultOf({ verdict, extra }: Outcome): Result {
  if (!verdict.ok) {
    return {
      ok: false,
      failed: { reason: verdict.reason, cbReason: verdict.cbReason, message: verdict.message },
    };
  }
  const bad = extra.find((c) => !c.ok);
  return bad
    ? {
        ok: false,
        failed: { reason: bad.reason ?? bad.id, cbReason: bad.cbReason ?? null, message: bad.message },
      }
    : { ok: true, verdict };
}

/**
 * Said after OK when the bundle's gates and two-person rules were read from its own chain
 * only: its signer vouches for them, but no signed policy confirmed them (`ours.policy_rules`
 * was not made), so a signer that weakened a rule consistently would pass.
 */
const POLICY_NOT_CHECKED =
  '; gates and approval rules checked against the chain only (the signed policy was not supplied: pass --policy)';

/**
 * The verdict as printed. Everything in it that came from the bundle is escaped: no control
 * or bidi character reaches the reviewer's terminal (messages quote values through the
 * verifier's `quote`; the line is escaped whole, the bundle id included).
 */
function report(outcome: Outcome, result: Result, asJson: boolean): string {
  const { trust } = outcome;
  const checks = [...outcome.verdict.checks, ...outcome.extra];
  const common = { target: outcome.target, trust: describeTrust(trust), checks };
  if (!result.ok) {
    const { failed } = result;
    return asJson
      ? escapeControlsInJson(json({ verdict: 'FAIL', ok: false, ...failed, ...common }))
      : escapeControls(
          `FAIL ${failed.cbReason ? `${failed.cbReason} (${failed.reason})` : failed.reason}: ${failed.message}`,
        );
  }
  const { bundleId, signerDid, events, receipts, approvals } = result.verdict;
  const via = [...new Set(trust.signers.filter((s) => s.did === signerDid).map((s) => s.source))];
  // Made only for claw-approvals bundles; with a supplied policy an OK verdict means it held.
  const rulesChecked = outcome.verdict.checks.some((c) => c.id === 'ours.policy_rules');
  return asJson
    ? escapeControlsInJson(
        json({
          verdict: 'OK',
          ok: true,
          reason: 'OK',
          cbReason: null,
          bundleId,
          signerDid,
          events,
          receipts,
          approvals,
          policy_checked: rulesChecked && outcome.policySupplied,
          ...common,
        }),
      )
    : escapeControls(
        `OK ${bundleId}: signed by ${signerDid} (trusted: ${via.join(', ')}); ` +
          `${events} chained events, ${approvals} approval receipts, ${receipts} gateway receipts verified` +
          (rulesChecked && !outcome.policySupplied ? POLICY_NOT_CHECKED : ''),
      );
}

export function bundleCommands(program: Command, ctx: CliContext): void {
  const bundle = program.command('bundle').description('proof bundles: verify, show');

  bundle
    .command('verify')
    .description(
      'check a proof bundle on any machine: a file or a bundle link needs only the trust you give ' +
        '(--jwks, --trust, --allowlist), no configuration, key or database; a pb_ id is checked ' +
        'against this server (its key ring and database) as well',
    )
    .argument('<file | url | pb_id>', 'a bundle JSON file, its https link, or a bundle id stored here')
    .option(
      '--jwks <url-or-file>',
      'trust the keys of this JWKS as bundle signers (a retired key only for bundles issued by its retired_at), e.g. https://<server>/.well-known/jwks.json; repeatable',
      collect,
    )
    .option('--trust <did>', 'trust this did:key as a bundle signer; repeatable', collect)
    .option('--gateway <did>', 'trust this did:key as a gateway receipt signer; repeatable', collect)
    .option(
      '--allowlist <file>',
      'Claw Bureau allowlist: agent_did (bundle signer), gateway_receipt_signer_dids',
    )
    .option(
      '--policy <url-or-file>',
      "the signed policy the bundle names (a /v1/wpc/<hash> answer or its envelope), to recompute each gated step's rule from it; a bundle link's own server is asked by default",
    )
    .option('--json', 'print the verdict, every check and the trust used as JSON')
    .addHelpText(
      'after',
      '\nA bundle never vouches for itself: without --jwks, --trust or --allowlist a file or link is not checked.\n' +
        'Exit code 0 on OK, 1 on FAIL or when the bundle or a trust source cannot be read.',
    )
    .action(async (arg: string, opts: VerifyOptions) => {
      const target = await targetOf(arg);
      const given = await reviewerTrust(opts, (text) => ctx.output.err(text));
      if (target.kind !== 'database' && given.signers.length === 0) {
        throw new AppError(
          'ERR_VALIDATION',
          'no bundle signer to trust: pass --jwks https://<server>/.well-known/jwks.json (the server that ' +
            "sealed the bundle) or --trust did:key:…; the bundle's own signer_did is never trusted",
        );
      }
      const outcome =
        target.kind === 'database'
          ? await verifyStored(ctx, target.id, given)
          : await verifyOffline(target, given, opts, (text) => ctx.output.err(text));
      const result = resultOf(outcome);
      ctx.output.out(report(outcome, result, opts.json === true));
      if (!result.ok)
        throw new AppError(
          'ERR_BUNDLE_INVALID',
          escapeControls(`${result.failed.reason}: ${result.failed.message}`),
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
