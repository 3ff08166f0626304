import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/database.js';
import { AppError } from '../../errors.js';
import { getVerifiedPolicy, type WpcEnvelope } from '../../policy/registry.js';
import { policyHashNamedBy } from '../../proofs/bundle-policy.js';
import { type BundleVerdict, verifyBundle } from '../../proofs/verify-bundle.js';
import { quote } from '../../proofs/verify/check.js';
import { firstDuplicateKey } from '../../proofs/verify/duplicate-keys.js';
import type { KeyRing } from '../../tokens/key-ring.js';
import { prefersHtml } from '../bundle-page/accept.js';
import { errorResponses, PARAM_ERRORS } from '../error-handler.js';
import {
  bundlePageCsp,
  type PinnedPolicyView,
  renderBundlePage,
  type ServerVerdictView,
} from '../bundle-page/render-page.js';

export const BUNDLE_ID = /^pb_[A-Za-z0-9_-]{22,64}$/;

export interface BundleRouteDeps {
  db: Db;
  /** Signs bundles and publishes the JWKS the page embeds; `trusts` decides the server's verdict. */
  keyRing: KeyRing;
  /** did:key of the gateways whose receipts count (`GATEWAY_SIGNER_DIDS`). */
  gatewaySigners: ReadonlySet<string>;
  /** `config.mattermost.url`: the page links the plan and approval posts there. */
  mattermostUrl: string | null;
  /** `PUBLIC_URL`, for the page's absolute links. */
  publicUrl: string | null;
}

/** The server's verdict as the page shows it; a failed check names Claw Bureau's code beside ours. */
function serverVerdict(v: BundleVerdict): ServerVerdictView {
  const checks = v.checks.map((c) => ({
    id: c.id,
    ok: c.ok,
    message: c.message,
    ...(c.reason ? { reason: c.cbReason ? `${c.cbReason} (${c.reason})` : c.reason } : {}),
  }));
  return v.ok
    ? {
        ok: true,
        reason: null,
        cbReason: null,
        message: `${v.events} events, ${v.approvals} approval receipts, ${v.receipts} gateway receipts`,
        checks,
      }
    : { ok: false, reason: v.reason, cbReason: v.cbReason, message: v.message, checks };
}

/**
 * A stored text the verifier cannot be given: not JSON, or JSON whose objects repeat a key
 * (JSON.parse keeps the last value, whoever reads the download sees the first), as `bundle
 * verify` refuses such a text. Null when the parsed envelope stands for the text.
 */
function unreadable(stored: string, envelope: unknown): ServerVerdictView | null {
  const failed = (id: string, message: string): ServerVerdictView => ({
    ok: false,
    reason: 'BUNDLE_ENVELOPE_MALFORMED',
    cbReason: null,
    message,
    checks: [{ id, ok: false, reason: 'BUNDLE_ENVELOPE_MALFORMED', message }],
  });
  if (envelope === undefined) return failed('input.json', 'the stored bundle is not JSON');
  const duplicate = firstDuplicateKey(stored);
  return duplicate
    ? failed(
        'input.duplicate_keys',
        `duplicate key ${quote(duplicate.key)} in ${duplicate.path} of the stored bundle: JSON.parse keeps the last value, a reader of the file sees the first`,
      )
    : null;
}

/**
 * The bundle a link names must be the bundle its row holds (as `bundle verify <link>` checks):
 * another genuine bundle, say of a job whose approvals were in order, stored under this id
 * fails the server's verdict. Checked on a verdict that passed everything else, as the CLI does.
 */
function checkLinkedId(verdict: ServerVerdictView, envelope: unknown, id: string): ServerVerdictView {
  if (!verdict.ok) return verdict;
  const named = (envelope as { payload?: { bundle_id?: unknown } }).payload?.bundle_id;
  if (named === id)
    return {
      ...verdict,
      checks: [
        ...verdict.checks,
        { id: 'target.bundle_id', ok: true, message: `the bundle is ${id}, as the link names` },
      ],
    };
  const message = `asked for ${id} but the stored bundle is ${quote(named)}`;
  return {
    ok: false,
    reason: 'BUNDLE_ID_MISMATCH',
    cbReason: null,
    message,
    checks: [...verdict.checks, { id: 'target.bundle_id', ok: false, reason: 'BUNDLE_ID_MISMATCH', message }],
  };
}

/**
 * The signed envelope of the policy version a bundle pins, from this server's registry and
 * verified there (bundles name it by hash only), so that the verdict recomputes each gated
 * step's rule from it. A version the registry cannot give (unknown, malformed hash, a row that
 * no longer verifies) is not supplied: the verdict then says that check was not made, and the
 * page says why. Anything but the registry's own refusals (a database failure) is thrown.
 */
async function pinnedPolicy(
  deps: BundleRouteDeps,
  envelope: unknown,
): Promise<{ envelope: WpcEnvelope | undefined; view: PinnedPolicyView }> {
  const hash = policyHashNamedBy(envelope);
  if (hash === null)
    return { envelope: undefined, view: { found: false, why: 'the bundle names no policy' } };
  try {
    const signed = await getVerifiedPolicy(deps.db, hash, deps.keyRing.trusts);
    return {
      envelope: signed,
      view: { found: true, signerDid: signed.signer_did, issuedAt: signed.issued_at },
    };
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    return { envelope: undefined, view: { found: false, why: err.message } };
  }
}

/**
 * `GET /v1/bundles/:id`: the sealed envelope, byte for byte as stored, or, for a browser that
 * asks for HTML, the reviewer's page around those same bytes, with the server's verdict made
 * against the signed policy the bundle pins (see `pinnedPolicy`), failed when the stored text
 * is not one JSON value (`unreadable`) or holds another bundle than the link names
 * (`checkLinkedId`); the page renders either way. JSON stays the answer to every
 * client that does not prefer HTML (no Accept, `*\/*`, `application/json`), and `Vary: Accept`
 * keeps the two apart in any cache. The 200 answer is sent as text, never serialized: a serializer
 * would re-order keys and the payload hash is over the stored order. The id carries 128 random bits;
 * the link is the capability the bot posts in the job's thread, so no shared cache keeps it and
 * no page it opens learns it.
 */
export function bundleRoutes(app: FastifyInstance, deps: BundleRouteDeps): void {
  const trust = { trustsSigner: deps.keyRing.trusts, gatewaySigners: deps.gatewaySigners };
  app.get<{ Params: { id: string } }>(
    '/v1/bundles/:id',
    {
      schema: {
        operationId: 'getBundle',
        summary: 'A sealed proof bundle, or its reviewer page',
        description:
          'JSON: the bundle byte for byte as sealed (`Cache-Control: private`). A browser that prefers HTML gets ' +
          'the reviewer page around the same bytes, with the server verdict. No credential: the id is the capability.',
        tags: ['proofs'],
        params: {
          type: 'object',
          required: ['id'],
          additionalProperties: false,
          properties: {
            id: { type: 'string', maxLength: 80, description: 'pb_ and 22 to 64 base64url characters' },
          },
        },
        // Both are sent as the stored text, never through a serializer (see above).
        response: {
          200: {
            description: 'The bundle (JSON) or the reviewer page (HTML), as `Accept` prefers; `Vary: Accept`',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  additionalProperties: true,
                  description: 'The signed bundle envelope',
                },
              },
              'text/html': { schema: { type: 'string' } },
            },
          },
          ...errorResponses([...PARAM_ERRORS, 'ERR_BUNDLE_NOT_FOUND', 'ERR_RATE_LIMITED']),
        },
      },
    },
    async (req, reply) => {
      reply.header('vary', 'Accept');
      if (!BUNDLE_ID.test(req.params.id)) throw new AppError('ERR_BUNDLE_NOT_FOUND', 'no such bundle');
      const row = await deps.db
        .selectFrom('bundles')
        .select('envelope')
        .where('bundle_id', '=', req.params.id)
        .executeTakeFirst();
      if (!row) throw new AppError('ERR_BUNDLE_NOT_FOUND', 'no such bundle');
      reply.headers({
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'x-robots-tag': 'noindex',
      });
      if (!prefersHtml(req.headers.accept)) {
        reply.header('cache-control', 'private, max-age=31536000, immutable');
        reply.type('application/json; charset=utf-8');
        return reply.send(row.envelope);
      }
      let envelope: unknown;
      try {
        envelope = JSON.parse(row.envelope);
      } catch {
        envelope = undefined;
      }
      const policy = await pinnedPolicy(deps, envelope);
      const server =
        unreadable(row.envelope, envelope) ??
        checkLinkedId(
          serverVerdict(verifyBundle(envelope, trust, { policy: policy.envelope })),
          envelope,
          req.params.id,
        );
      const page = renderBundlePage({
        bundleId: req.params.id,
        stored: row.envelope,
        envelope,
        server,
        policy: policy.view,
        trust: { keys: deps.keyRing.jwks.keys, gateway_signers: [...deps.gatewaySigners] },
        mattermostUrl: deps.mattermostUrl,
        publicUrl: deps.publicUrl,
      });
      // The verdict is today's (keys rotate, the renderer improves): never served from a cache.
      reply.headers({
        'cache-control': 'private, no-store',
        'content-security-policy': bundlePageCsp('header'),
        'x-frame-options': 'DENY',
        'cross-origin-opener-policy': 'same-origin',
      });
      reply.type('text/html; charset=utf-8');
      return reply.send(page);
    },
  );
}
