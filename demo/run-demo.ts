import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import {
  clickAction,
  executeCommand,
  OPS_WORKSPACE,
  seedOpsWorkspace,
  startSandbox,
} from '@claw-approvals/mattermost-sandbox';
import { ClawApiError, ClawClient, isClawError } from '@claw-approvals/client';
import type { Logger } from 'pino';
import { createAgent } from '../src/agents/agent-keys.js';
import type { Config } from '../src/config.js';
import { didKeyFromPublicKey } from '../src/crypto/did-key.js';
import { sealEnvelope, verifyEnvelope } from '../src/crypto/envelope.js';
import { fromB64u, jcsHashB64u, sha256B64u } from '../src/crypto/hash.js';
import { AppError } from '../src/errors.js';
import { bundlePayloadHash } from '../src/proofs/seal-bundle.js';
import { verifyBundle } from '../src/proofs/verify-bundle.js';
import { startServer } from '../src/server.js';
import { generateSigningJwk, signingKeyFromJwk } from '../src/tokens/signing-key.js';

const STEP = 'post-summary';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new AppError('ERR_INTERNAL', `demo: timed out waiting for ${what}`);
    await sleep(20);
  }
}

export interface DemoOptions {
  /** The settings `serve` would use; the demo overrides the database, data directory and Mattermost. */
  config: Config;
  /** The service log; quiet unless `keep`. */
  log: Logger;
  /** Where the demo's story goes, one line (or block) per call. */
  say: (text: string) => void;
  /** Leave the sandbox, the bot and the API running and print their URLs. */
  keep?: boolean;
}

/** A port nobody listens on now, so PUBLIC_URL (which buttons call back to) is known before start. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * The shipped policies, copied, with Approve/Deny buttons enabled in each one's
 * `execution.approval_methods` (the shipped files leave them off: phrase only).
 */
async function policiesWithButtons(from: string, to: string): Promise<string> {
  await fs.mkdir(to, { recursive: true });
  for (const name of await fs.readdir(from)) {
    const text = await fs.readFile(path.join(from, name), 'utf8');
    const doc = name.endsWith('.json') ? (JSON.parse(text) as Record<string, unknown>) : null;
    const execution = doc?.execution as Record<string, unknown> | undefined;
    if (execution && doc?.policy_version === undefined) execution.approval_methods = ['phrase', 'button'];
    await fs.writeFile(path.join(to, name), execution ? `${JSON.stringify(doc, null, 2)}\n` : text);
  }
  return to;
}

/**
 * The whole product on embedded defaults: a Mattermost-compatible sandbox seeded with the
 * workspace the shipped policies name, the bot and API on PGlite in a throwaway directory, and
 * a demo agent on the HTTP API. A requester asks for a runbook; an outsider, and the requester
 * by button, try to approve and are refused; one approver approves by phrase; the security
 * group pauses all work (a click is refused) and resumes it; a second approver approves by
 * button; the CST is minted, claimed and redeemed once; the agent reports; `/claw status`
 * answers; the bundle is sealed and verified. The plan post changes in place all along.
 * It lives outside `src/` because the sandbox is a test tool the product never ships.
 */
export async function runDemo(opts: DemoOptions): Promise<void> {
  const base = opts.config;
  const say = opts.say;
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'claw-demo-'));
  const log = opts.log.child({ demo: true });
  // The shipped policies name channels the sandbox does not have; the bot warns about each once.
  log.level = opts.keep ? base.logLevel : 'error';
  const sandbox = await startSandbox({ log: log.child({ component: 'sandbox' }) });
  const ws = seedOpsWorkspace(sandbox);
  const gateway = signingKeyFromJwk(generateSigningJwk(), 'demo gateway');
  // A stand-in gateway: one Claw Bureau gateway receipt per step, bound to the step's claim
  // and declaring a causal span (each step's span hangs from the job's previous one), so the
  // sealed bundle passes clawverify's enforce mode as a real gateway's would.
  const lastSpan = new Map<string, string>();
  const receiptFor = (runId: string, eventHash: string, step: string) => {
    const span = `span_${runId.replace(':', '_')}_${step}`;
    const parent = lastSpan.get(runId);
    lastSpan.set(runId, span);
    const payload = {
      receipt_version: '1',
      receipt_id: `rcpt_demo_${runId.replace(':', '_')}_${step}`,
      gateway_id: 'gw_demo',
      provider: 'demo',
      model: 'demo',
      request_hash_b64u: sha256B64u(`request ${runId} ${step}`),
      response_hash_b64u: sha256B64u(`response ${runId} ${step}`),
      tokens_input: 0,
      tokens_output: 0,
      latency_ms: 0,
      timestamp: new Date().toISOString(),
      binding: {
        run_id: runId,
        event_hash_b64u: eventHash,
        span_id: span,
        ...(parent ? { parent_span_id: parent } : {}),
      },
    };
    return sealEnvelope({
      type: 'gateway_receipt',
      payload,
      payloadHashB64u: bundlePayloadHash(payload),
      key: gateway,
      issuedAt: new Date(),
    });
  };
  const port = await freePort();
  // The /claw slash command, registered as a system admin would, with the token we configure.
  const commandToken = randomBytes(13).toString('hex');
  const config = {
    ...base,
    databaseUrl: null,
    dataDir,
    port,
    host: '127.0.0.1',
    publicUrl: `http://127.0.0.1:${port}`,
    // Buttons: their MAC key, kept like the signing key, in the demo's own data directory.
    actionSecretFile: path.join(dataDir, 'keys', 'action-secret'),
    policiesDir: await policiesWithButtons(base.policiesDir, path.join(dataDir, 'policies')),
    commandToken: { kind: 'value' as const, token: commandToken },
    mattermost: { url: sandbox.url, token: ws.botToken },
    signingKey: { kind: 'generated' as const, file: path.join(dataDir, 'keys', 'signing-key.jwk.json') },
    // The shipped policies require gateway receipts: a demo gateway signs one per step.
    gatewaySignerDids: [gateway.did],
  };
  const server = await startServer(config, log, { handleSignals: !!opts.keep });
  sandbox.createCommand({
    creator_id: ws.botUserId,
    team_id: ws.team,
    trigger: 'claw',
    url: `${server.url}/v1/mattermost/command`,
    token: commandToken,
  });
  let agentStop = false;
  try {
    say(
      `claw-approvals demo: Mattermost sandbox at ${sandbox.url}, bot + API at ${server.url}, PGlite in ${dataDir}\n`,
    );
    const api = async (method: string, p: string, body?: unknown, bearer?: string) => {
      const res = await fetch(`${server.url}${p}`, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };

    // 1. Policies, signed and served back, verified as an auditor would.
    const jwks = (await api('GET', '/.well-known/jwks.json')).body as {
      keys: { kid: string; x: string }[];
    };
    const signers = new Set(jwks.keys.map((k) => didKeyFromPublicKey(fromB64u(k.x))));
    const snap = server.policies.current();
    if (!snap) throw new AppError('ERR_INTERNAL', 'policies did not load');
    say(
      '1. Shipped policies, hashed (JCS + SHA-256), signed, fetched back from /v1/wpc and verified against JWKS:',
    );
    for (const cand of snap.resolution.active.values()) {
      const { status, body } = await api('GET', `/v1/wpc/${cand.hash}`);
      const check = verifyEnvelope(body.envelope, {
        type: 'work_policy_contract',
        hashPayload: jcsHashB64u,
        trustedSigners: signers,
      });
      if (status !== 200 || !check.ok)
        throw new AppError('ERR_INTERNAL', `policy ${cand.name} failed verification`);
      say(`   verified ${cand.name.padEnd(36)} ${cand.hash.slice(0, 12)}…`);
    }

    await until('the bot to connect', () => (server.bot?.readiness().ok ? true : undefined));
    const ready = await api('GET', '/readyz');
    say(`\n2. The bot connected to Mattermost (REST + WebSocket); /readyz -> HTTP ${ready.status}`);

    // The demo agent: an API key, then claim → redeem → report for every step it may run.
    const { key: agentKey } = await createAgent(server.runtime.database.db, {
      id: OPS_WORKSPACE.executor,
      description: 'demo agent',
      at: new Date(),
    });
    const agentLog: string[] = [];
    let replayAnswer = '';
    const claw = new ClawClient({ baseUrl: server.url, agentKey });
    // While work is paused nothing is claimed or redeemed: the agent waits for the resume.
    const pausable = async <T>(call: () => Promise<T>): Promise<T> => {
      for (;;) {
        try {
          return await call();
        } catch (err) {
          if (!isClawError(err, 'ERR_PAUSED') || agentStop) throw err;
          await sleep(200);
        }
      }
    };
    const agent = (async () => {
      while (!agentStop) {
        let jobs;
        try {
          jobs = await claw.readyJobs({ waitSeconds: 1 });
        } catch (err) {
          if (!isClawError(err)) throw err;
          agentLog.push(
            `   agent: GET /v1/jobs -> ${err instanceof ClawApiError ? `HTTP ${err.status}` : err.code}`,
          );
          await sleep(500);
          continue;
        }
        for (const job of jobs) {
          for (const step of job.steps.filter((s) => s.token?.claimable)) {
            try {
              const claim = await pausable(() => claw.claimToken(job, step.id));
              await pausable(() => claw.redeem(claim.token, 'clawproxy'));
              if (step.id === STEP) {
                const again = await claw.redeem(claim.token, 'clawproxy').catch((err: unknown) => err);
                replayAnswer =
                  again instanceof ClawApiError ? `HTTP ${again.status} ${again.code}` : 'redeemed twice';
              }
              await claw.reportResult(job, step.id, {
                status: 'succeeded',
                summary: `${step.id} done`,
                receipts: [receiptFor(claim.run_id, claim.event_hash_b64u, step.id)],
              });
              agentLog.push(
                `   agent: claimed ${step.id} (CST ${claim.jti}), redeemed once, reported succeeded`,
              );
            } catch (err) {
              // Told in the story (the job then never completes and the demo says so).
              if (!isClawError(err)) throw err;
              agentLog.push(`   agent: ${step.id} -> ${err.code}`);
            }
          }
        }
      }
    })();
    // Awaited at the end; a failure before then is not an unhandled rejection.
    agent.catch(() => undefined);

    // 3. The conversation.
    const post = (who: keyof typeof ws.ids, message: string, root?: string) =>
      sandbox.createPost(ws.ids[who], {
        channel_id: ws.channel,
        message,
        ...(root ? { root_id: root } : {}),
      });
    const reply = (root: string, includes: string) =>
      until(`a bot reply containing "${includes}"`, () =>
        sandbox.thread(root).find((p) => p.user_id === ws.botUserId && p.message.includes(includes)),
      );
    const root = post(
      'bruno',
      '@clawbot run service-context service=payments-api query="p99 latency since 09:00" notify_channel=payments-oncall',
    );
    const plan = await reply(root.id, 'Plan for job:');
    const jobId = Number(/^job:(\d+)$/.exec(String(plan.props.claw_job_id))?.[1]);
    // The plan post is the job's status post: every version of its status line, as people saw it.
    const statusPost = () => sandbox.thread(root.id).find((p) => p.id === plan.id);
    const statusLines: string[] = [];
    const statusNow = () => {
      const now =
        statusPost()
          ?.message.split('\n')
          .find((l) => l.startsWith('**Status:')) ?? '';
      if (now && now !== statusLines.at(-1)) statusLines.push(now);
      return now;
    };
    const watcher = setInterval(statusNow, 10);
    const statusShows = (text: string) =>
      until(`the status post to say "${text}"`, () => (statusNow().includes(text) ? true : undefined));
    // Buttons come with the first edit, once the post exists (the post id is in their MAC).
    const button = (label: string) =>
      until(`the ${label} button`, () => {
        const attachments = (statusPost()?.props.attachments ?? []) as {
          actions?: { id: string; name: string }[];
        }[];
        return attachments.flatMap((a) => a.actions ?? []).find((a) => a.name === label);
      });
    const click = async (who: keyof typeof ws.tokens, label: string) => {
      const before = sandbox.ephemeralPostsFor(ws.ids[who]).length;
      const action = await button(label);
      const answer = await clickAction(sandbox, ws.tokens[who], plan.id, action.id);
      if (answer.status !== 200)
        throw new AppError('ERR_INTERNAL', `demo: the click answered ${answer.status}`);
      const shown = await until(
        'the ephemeral answer to the click',
        () => sandbox.ephemeralPostsFor(ws.ids[who])[before],
      );
      clicks.push(`   @${who} clicked "${label}" -> only they see: ${shown.message}`);
    };
    const clicks: string[] = [];
    const phrase = `APPROVE job:${jobId} step:${STEP}`;
    post('outsider', phrase, root.id);
    await reply(root.id, '@outsider not counted');
    await click('bruno', `Approve ${STEP}`);
    post('alice', phrase, root.id);
    await reply(root.id, 'Approval by @alice counted');
    await statusShows('waiting for approval');
    post('erin', '@clawbot pause incident INC-7: checking the payments gateway', root.id);
    await reply(root.id, 'Work paused');
    await statusShows('paused');
    // Paused, the buttons are gone and a typed approval is refused (and recorded as refused).
    post('chioma', phrase, root.id);
    await reply(root.id, '@chioma not counted: work is paused');
    post('erin', '@clawbot resume gateway is fine', root.id);
    await reply(root.id, 'Work resumed');
    await statusShows('waiting for approval');
    await click('chioma', `Approve ${STEP}`);
    await reply(root.id, 'approved by');
    const status = await executeCommand(sandbox, ws.tokens.dmitri, {
      channel_id: ws.channel,
      team_id: ws.team,
      command: `/claw status job:${jobId}`,
    });
    const statusAnswer = String(
      (status.body as { text?: string } | undefined)?.text ?? `HTTP ${status.status}`,
    );
    const printThread = () => {
      clearInterval(watcher);
      say(`\n3. The thread in ~ops-requests, as people read it (the plan post as it reads now):\n`);
      for (const p of sandbox.thread(root.id)) {
        const who = sandbox.getUser(p.user_id)?.username ?? p.user_id;
        const reactions = sandbox.reactionsOn(p.id).map((r) => `:${r.emoji_name}:`);
        say(
          `   @${who}${p.user_id === ws.botUserId ? ' (bot)' : ''}${reactions.length ? `  [${reactions.join(' ')}]` : ''}`,
        );
        for (const line of p.message.split('\n')) say(`      ${line}`);
        say('');
      }
      say('   The plan post, edited in place as the job moved (each version of its status line):');
      for (const l of statusLines) say(`      ${l}`);
      say('\n   Buttons, answered to the clicker alone:');
      for (const l of clicks) say(l);
      say(`\n   @dmitri typed /claw status job:${jobId} -> only he sees:`);
      for (const l of statusAnswer.split('\n').slice(0, 6)) say(`      ${l}`);
      say('\n4. The demo agent, over the HTTP API:');
      for (const l of agentLog) say(l);
      say(`   second redeem of the ${STEP} token -> ${replayAnswer || '(not reached)'}`);
    };
    const ended = await reply(root.id, `job:${jobId} completed`).catch((err: unknown) => {
      printThread();
      throw err;
    });
    agentStop = true;
    await agent;
    await statusShows('completed');
    printThread();

    const bundleId = String(ended.props.claw_bundle_id);
    const res = await fetch(`${server.url}/v1/bundles/${bundleId}`);
    const envelope: unknown = await res.json();
    const verdict = verifyBundle(envelope, {
      trustsSigner: (did) => signers.has(did),
      gatewaySigners: new Set([gateway.did]),
    });
    say(
      `\n5. Proof bundle ${bundleId}: GET /v1/bundles/${bundleId} -> HTTP ${res.status}; verified offline against JWKS: ${verdict.ok ? 'OK' : `FAILED ${verdict.reason}`}`,
    );
    say(
      `   A reviewer opens ${server.url}/v1/bundles/${bundleId} in a browser, or runs the thread's Verify line.`,
    );
    if (!verdict.ok || !replayAnswer.includes('ERR_TOKEN_REPLAYED')) {
      throw new AppError('ERR_INTERNAL', 'the demo did not end as it should');
    }
    if (opts.keep) {
      say(
        [
          '\nRunning. Post as anyone through the sandbox control API, e.g.:',
          `  curl -s ${sandbox.url}/sandbox/v1/posts -H 'content-type: application/json' -d '{"username":"grace","channel_id":"${ws.channel}","message":"@clawbot help"}'`,
          `  curl -s ${sandbox.url}/sandbox/v1/channels/${ws.channel}/posts`,
          `  curl -s ${server.url}/readyz`,
          `  agent key for ${OPS_WORKSPACE.executor}: ${agentKey}`,
          'Ctrl-C to stop.',
        ].join('\n'),
      );
      await new Promise<never>(() => {});
    }
  } finally {
    agentStop = true;
    if (!opts.keep) {
      await server.stop();
      await sandbox.close();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  }
}
