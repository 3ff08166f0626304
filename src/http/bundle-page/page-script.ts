import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as TypeScript from 'typescript';

/**
 * The browser code of the bundle page ships as the compiled text of three modules that import
 * nothing (only `import type`, which compiles away): src/proofs/two-person.ts (the very rule
 * `bundle verify` applies), browser-verify.ts and browser-page.ts. Each is inlined in a scope of
 * its own, its `export` keywords dropped, and the one script is allowed by its hash in the CSP.
 *
 * Why compiled text rather than `fn.toString()`: `toString` carries neither the module-level
 * helpers a function calls nor the same text under every loader (tsx's esbuild inserts
 * `__name(...)` calls, vitest does not). Reading the module's whole compiled file has neither
 * problem. After `npm run build` (dist/, what `npm start` runs) the `.js` files beside this one
 * are exactly what tsc emitted; run from source (tsx, vitest, `npm run demo`) the `.ts` files are
 * compiled here by the same compiler, `typescript`, which every source checkout has.
 */
const MODULES = [
  { path: '../../proofs/two-person', name: 'twoPerson', exports: 'checkTwoPerson' },
  { path: './browser-verify', name: 'verifier', exports: 'verifyInBrowser' },
  { path: './browser-page', name: 'page', exports: 'runBundlePage' },
] as const;

function compiledModule(path: string): string {
  if (fileURLToPath(import.meta.url).endsWith('.js')) {
    return readFileSync(new URL(`${path}.js`, import.meta.url), 'utf8');
  }
  const ts = createRequire(import.meta.url)('typescript') as typeof TypeScript;
  const source = readFileSync(new URL(`${path}.ts`, import.meta.url), 'utf8');
  return ts.transpileModule(source, {
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ES2022,
      verbatimModuleSyntax: true,
    },
  }).outputText;
}

/** A module's compiled text as an expression evaluating to its `exported` binding. */
function inScope(path: string, exported: string): string {
  const body = compiledModule(path)
    .replace(/^\/\/# sourceMappingURL=.*$/gm, '')
    .replace(/^export \{\};?$/gm, '')
    .replace(/^export (?=(?:async )?function[ *]|const |let |class )/gm, '');
  if (/^\s*(import|export)\b/m.test(body))
    throw new Error(`${path} cannot run in the bundle page: it imports or exports`);
  return `(() => {\n${body}\nreturn ${exported};\n})()`;
}

export interface PageScript {
  text: string;
  /** The CSP source that allows exactly this script. */
  cspHash: string;
}

let built: PageScript | undefined;

/** The page's one script, built once (on the first page served, not at import). */
export function bundlePageScript(): PageScript {
  if (built) return built;
  const parts = MODULES.map((m) => `const ${m.name} = ${inScope(m.path, m.exports)};`);
  const text = ['"use strict";', ...parts, 'page(verifier, twoPerson);', ''].join('\n');
  // Inline in HTML: text that would end the script element or open a comment cannot be in it.
  if (/<\/script|<!--/i.test(text)) throw new Error('the bundle page script cannot be inlined in HTML');
  built = { text, cspHash: `'sha256-${createHash('sha256').update(text).digest('base64')}'` };
  return built;
}
