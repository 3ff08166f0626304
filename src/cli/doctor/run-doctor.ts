import type { Logger } from 'pino';
import { nameLookupFor } from '../../chat/mattermost-names.js';
import { type Config, configSecrets } from '../../config.js';
import type { NameLookup } from '../../policy/name-lookup.js';
import { checkFiles } from './check-files.js';
import { checkMattermostAccount, checkMemberships } from './check-mattermost.js';
import { checkPublicUrl } from './check-public-url.js';
import { checkGroupMembers, checkNames } from './check-references.js';
import { checkState } from './check-state.js';
import type { Finding } from './findings.js';
import type { Fetch } from './http-get.js';

export interface DoctorReport {
  ok: boolean;
  problems: number;
  findings: Finding[];
}

/** Names cannot be asked about when Mattermost itself failed its checks: say so instead of guessing. */
function unavailable(reason: string): NameLookup {
  const fail = () => Promise.reject(new Error(reason));
  return { userByUsername: fail, teamByName: fail, channelByName: fail, groupsNamed: fail };
}

/** Replaces every secret of the configuration wherever it might appear in a finding. */
function scrub(findings: Finding[], secrets: readonly string[]): Finding[] {
  const clean = (text: string) => secrets.reduce((t, s) => (s ? t.split(s).join('***') : t), text);
  return findings.map((f) => ({ ...f, message: clean(f.message), ...(f.fix ? { fix: clean(f.fix) } : {}) }));
}

/**
 * Everything a platform engineer should know after configuring: Mattermost (URL, server,
 * token, bot, teams, channels), every name and groups.json reference, PUBLIC_URL, the files
 * that hold secrets, the database and the policies. Reads only: nothing is created or signed.
 */
export async function runDoctor(deps: {
  config: Config;
  log: Logger;
  cwd: string;
  fetch?: Fetch;
}): Promise<DoctorReport> {
  const { config, log } = deps;
  const findings: Finding[] = [];
  const account = await checkMattermostAccount(config, deps.fetch);
  findings.push(...account.findings);
  const names = account.session
    ? nameLookupFor(config.mattermost, log, 1)
    : config.mattermost
      ? unavailable('Mattermost did not pass its checks above')
      : null;
  const state = await checkState(config, log, names);
  findings.push(...checkNames(state.view.names));
  if (account.session) {
    findings.push(...(await checkMemberships(account.session, state.view.teams, state.view.channels)));
    if (state.view.groups)
      findings.push(...(await checkGroupMembers(account.session, state.view.groups, state.view.names)));
  }
  findings.push(...(await checkPublicUrl(config, deps.fetch)));
  findings.push(...(await checkFiles(config, deps.cwd)));
  findings.push(...state.findings);
  const safe = scrub(findings, configSecrets(config));
  const problems = safe.filter((f) => f.status === 'problem').length;
  return { ok: problems === 0, problems, findings: safe };
}
