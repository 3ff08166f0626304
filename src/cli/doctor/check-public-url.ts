import { isIP } from 'node:net';
import type { Config } from '../../config.js';
import { type Finding, note, ok, problem } from './findings.js';
import { type Fetch, httpGet } from './http-get.js';
import { describeNetworkError } from './network-error.js';

/** Loopback and private ranges, which Mattermost will not call unless told it may. */
function isInternal(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return /^(127\.|10\.|192\.168\.|169\.254\.|172\.(1[6-9]|2\d|3[01])\.|0\.)/.test(host);
  if (isIP(host) === 6) return host === '::1' || /^f[cd]/i.test(host) || /^fe80:/i.test(host);
  return false;
}

/**
 * Mattermost posts button clicks, dialogs and slash commands to PUBLIC_URL, and links lead
 * reviewers there: it must be set, and this server must answer at it.
 */
export async function checkPublicUrl(config: Config, fetchFn?: Fetch): Promise<Finding[]> {
  // loadConfig puts http://localhost:PORT in when PUBLIC_URL is unset.
  if (config.publicUrl === `http://localhost:${config.port}`) {
    return [
      problem(
        'public_url',
        `PUBLIC_URL is not set: it defaults to ${config.publicUrl}, which only this machine can reach`,
        'set PUBLIC_URL to the address at which Mattermost and reviewers reach this server (https://claw.example.com)',
      ),
    ];
  }
  const base = new URL(config.publicUrl);
  const answer = await httpGet(new URL(`${config.publicUrl}/healthz`), fetchFn ? { fetch: fetchFn } : {});
  const findings: Finding[] = [];
  if (!answer.ok) {
    const why = describeNetworkError(answer.error, base);
    findings.push(
      problem(
        'public_url',
        `nothing answers at ${config.publicUrl}/healthz: ${why.message}`,
        `start the server (claw-approvals serve) and make PUBLIC_URL lead to it: ${why.fix}`,
      ),
    );
  } else if (
    answer.status !== 200 ||
    typeof answer.body !== 'object' ||
    answer.body === null ||
    (answer.body as { ok?: unknown }).ok !== true
  ) {
    findings.push(
      problem(
        'public_url',
        `${config.publicUrl}/healthz answered ${answer.status}, not as claw-approvals does`,
        'make PUBLIC_URL lead to this server (check the reverse proxy and its path)',
      ),
    );
  } else {
    findings.push(ok('public_url', `${config.publicUrl} answers as claw-approvals`));
  }
  if (isInternal(base.hostname))
    findings.push(
      note(
        'public_url',
        `${base.hostname} is a loopback or private address: Mattermost calls it only if ServiceSettings.AllowedUntrustedInternalConnections lists it`,
      ),
    );
  return findings;
}
