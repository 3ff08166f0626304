// `npm start`: runs the built program (`claw-approvals serve`, or the command given) in this
// process. It builds first only when there is no build or its sources differ from those it was built from, so an
// installed checkout (`npm ci` builds it) starts without compiling anything.
import path from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import { build, ROOT, staleReason, typescriptCompiler } from './build.mjs';

const stale = staleReason();
if (stale) {
  if (!typescriptCompiler()) {
    process.stderr.write(
      `claw-approvals: cannot start: ${stale}, and TypeScript is not installed to build it; ` +
        'run npm ci (with dev dependencies), or use the Docker image\n',
    );
    process.exit(1);
  }
  process.stderr.write(`claw-approvals: building first (${stale})\n`);
  if (!(await build())) {
    process.stderr.write('claw-approvals: the build failed: not starting\n');
    process.exit(1);
  }
}
// main.js reads its command from process.argv after the script: `start.mjs serve` is `main.js serve`.
await import(pathToFileURL(path.join(ROOT, 'dist', 'src', 'main.js')).href);
