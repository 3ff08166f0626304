/** One thing `claw-approvals doctor` looked at, and what it found. */
export interface Finding {
  /** What was checked: `mattermost.token`, `files`, `policies`… */
  check: string;
  status: 'ok' | 'problem' | 'note';
  message: string;
  /** For a problem: what to do about it. */
  fix?: string;
}

export const ok = (check: string, message: string): Finding => ({ check, status: 'ok', message });

export const note = (check: string, message: string): Finding => ({ check, status: 'note', message });

export const problem = (check: string, message: string, fix: string): Finding => ({
  check,
  status: 'problem',
  message,
  fix,
});
