import type { Command } from 'commander';
import { AppError, isAppError } from '../errors.js';
import type { CliContext } from './context.js';
import { type Finding, problem } from './doctor/findings.js';
import { type DoctorReport, runDoctor } from './doctor/run-doctor.js';
import { json } from './output.js';

/** An invalid configuration is the first thing the doctor reports, each bad setting with its fix. */
function configReport(err: AppError): DoctorReport {
  const details = Array.isArray(err.details) ? (err.details as { key: string; problem: string }[]) : [];
  const findings = details.map((d) =>
    problem('config', `${d.key} ${d.problem}`, `fix ${d.key} in the environment or .env`),
  );
  return { ok: false, problems: findings.length, findings };
}

const LABEL: Record<Finding['status'], string> = { ok: 'ok     ', problem: 'PROBLEM', note: 'note   ' };

function render(report: DoctorReport): string {
  const width = Math.max(...report.findings.map((f) => f.check.length), 0);
  const lines = report.findings.flatMap((f) => [
    `${LABEL[f.status]}  ${f.check.padEnd(width)}  ${f.message}`,
    ...(f.fix ? [`${' '.repeat(9 + width + 2)}fix: ${f.fix}`] : []),
  ]);
  lines.push(report.ok ? 'no problems found' : `${report.problems} problem(s) found`);
  return lines.join('\n');
}

export function doctorCommand(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .description(
      'check the set-up: Mattermost URL, token and bot account, team and channel memberships, names and groups.json references, PUBLIC_URL, key file modes, database, policies',
    )
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      let report: DoctorReport;
      try {
        const config = ctx.config();
        // Policy loading logs each problem; here they are findings, so the log stays quiet.
        report = await runDoctor({
          config,
          log: ctx.log().child({}, { level: 'silent' }),
          cwd: process.cwd(),
        });
      } catch (err) {
        if (!isAppError(err) || err.code !== 'ERR_CONFIG_INVALID') throw err;
        report = configReport(err);
      }
      ctx.output.out(opts.json ? json(report) : render(report));
      if (!report.ok) throw new AppError('ERR_CONFIG_INVALID', `doctor found ${report.problems} problem(s)`);
    });
}
