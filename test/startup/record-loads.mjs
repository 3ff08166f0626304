// Preloaded into a child `serve` (`--import`): appends the URL of every module the ESM loader
// loads to the file named by CLAW_RECORD_LOADS, so a test can see the program's module graph.
// CommonJS files a package requires internally are not seen; package entry points are.
import { register } from 'node:module';
import process from 'node:process';

register(
  `data:text/javascript,${encodeURIComponent(`
    import { appendFileSync } from 'node:fs';
    let file;
    export function initialize(data) { file = data.file; }
    export async function load(url, context, next) {
      appendFileSync(file, url + '\\n');
      return next(url, context);
    }
  `)}`,
  { data: { file: process.env.CLAW_RECORD_LOADS } },
);
