import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as TypeScript from 'typescript';

/**
 * The browser code of the bundle page ships as the compiled text of the modules below, in
 * this order: src/proofs/two-person.ts (the very rule `bundle verify` applies) and
 * verify/duplicate-keys.ts (its scan for a repeated key), the page's verifier (browser-*.ts)
 * and browser-page.ts. They import nothing but each other (and
 * `import type`, which compiles away), so each is inlined in a scope of its own: its
 * `export`ed names are what that scope returns, and an `import { a, b } from './x.js'` of an
 * earlier module becomes `const { a, b } = <that module's scope>`. The one script is allowed
 * by its hash in the CSP.
 *
 * Why compiled text rather than `fn.toString()`: `toString` carries neither the module-level
 * helpers a function calls nor the same text under every loader (tsx's esbuild inserts
 * `__name(...)` calls, vitest does not). Reading the module's whole compiled file has neither
 * problem. After `npm run build` (dist/, what `npm start` runs) the `.js` files beside this one
 * are exactly what tsc emitted; run from source (tsx, vitest, `npm run demo`) the `.ts` files are
 * compiled here by the same compiler, `typescript`, which every source checkout has.
 */
const MODULES = [
  '../../proofs/two-person',
  '../../proofs/verify/duplicate-keys',
  '../../proofs/verify/unevaluated',
  '../../crypto/unsafe-ed25519-key',
  './browser-common',
  './browser-envelope',
  './browser-receipts',
  './browser-two-person',
  './browser-bindings',
  './browser-verify',
  './browser-page',
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

/** A module's identity: its URL without the extension, so `./x.js` (in code) names `./x` (here). */
const moduleKey = (url: URL) => url.href.replace(/\.(js|ts)$/, '');

const IMPORT = /^import \{([^}]*)\} from '([^']+)';?$/gm;
const EXPORTED = /^export (?:async )?(?:function\*? ?|const |let |class )([A-Za-z_$][\w$]*)/gm;

/**
 * A module's compiled text as an expression evaluating to an object of its exports, its
 * imports of earlier modules (`scopes`: module key → variable) bound from their scopes.
 */
function inScope(path: string, scopes: Map<string, string>): string {
  const self = new URL(path, import.meta.url);
  const text = compiledModule(path).replace(/^\/\/# sourceMappingURL=.*$/gm, '');
  const exported = [...text.matchAll(EXPORTED)].map((m) => m[1]!);
  const body = text
    .replace(IMPORT, (_line, names: string, from: string) => {
      const scope = scopes.get(moduleKey(new URL(from, self)));
      if (!scope || /\bas\b/.test(names))
        throw new Error(`${path} cannot run in the bundle page: it imports ${from} (${names.trim()})`);
      return `const {${names}} = ${scope};`;
    })
    .replace(/^export \{\};?$/gm, '')
    .replace(/^export (?=(?:async )?function[ *]|const |let |class )/gm, '');
  if (/^\s*(import|export)\b/m.test(body))
    throw new Error(`${path} cannot run in the bundle page: it imports or exports`);
  return `(() => {\n${body}\nreturn { ${exported.join(', ')} };\n})()`;
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
  const scopes = new Map<string, string>();
  const parts = MODULES.map((path, i) => {
    const name = `module${i}`;
    const part = `const ${name} = ${inScope(path, scopes)};`;
    scopes.set(moduleKey(new URL(path, import.meta.url)), name);
    return part;
  });
  const [twoPerson, verifier, page] = ['../../proofs/two-person', './browser-verify', './browser-page'].map(
    (path) => scopes.get(moduleKey(new URL(path, import.meta.url)))!,
  );
  const run = `${page}.runBundlePage(${verifier}.verifyInBrowser, ${twoPerson}.checkTwoPerson);`;
  const text = ['"use strict";', ...parts, run, ''].join('\n');
  // Inline in HTML: text that would end the script element or open a comment cannot be in it.
  if (/<\/script|<!--/i.test(text)) throw new Error('the bundle page script cannot be inlined in HTML');
  built = { text, cspHash: `'sha256-${createHash('sha256').update(text).digest('base64')}'` };
  return built;
}
