import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GROUPS_SCHEMA_FILE, WPC_SCHEMA_FILE } from '../../src/paths.js';
import { schemaValidators } from '../../src/policy/validate-policy.js';
import { REPO_POLICIES_DIR, tempDir } from '../helpers/fs.js';

/**
 * The policy schemas are compiled ahead of time (scripts/compile-policy-schemas.mjs); the server
 * uses that code only for the very schema files it was compiled from, and it judges every
 * policy exactly as Ajv compiling the files at run time does.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const script = (await import(pathToFileURL(path.join(ROOT, 'scripts/compile-policy-schemas.mjs')).href)) as {
  policySchemaModule(root?: string): Promise<string>;
  OUTPUT: string;
};

const shipped = ['change-mgmt-prod-approval', 'mattermost-agent-prod', 'invoice-triage'].map(
  (name) =>
    JSON.parse(readFileSync(path.join(REPO_POLICIES_DIR, `${name}.json`), 'utf8')) as Record<string, unknown>,
);

/** Valid policies and broken ones: a required field gone, a field added, a type changed. */
function samples(): unknown[] {
  return shipped.flatMap((p) => {
    const { tools: _tools, ...missing } = p;
    return [
      p,
      missing,
      { ...p, surprise: true },
      { ...p, policy_name: 42 },
      { ...p, tools: { ...(p.tools as object), allow: 'read' } },
    ];
  });
}

async function copiedSchemas(edit: (text: string) => string = (t) => t) {
  const dir = await tempDir('claw-schemas-');
  const files = { wpc: path.join(dir, 'wpc.schema.json'), groups: path.join(dir, 'groups.schema.json') };
  writeFileSync(files.wpc, edit(readFileSync(WPC_SCHEMA_FILE, 'utf8')));
  writeFileSync(files.groups, readFileSync(GROUPS_SCHEMA_FILE, 'utf8'));
  return files;
}

describe('compiled policy schema validators', () => {
  it('are what the script compiles from the schema files as they are now', async () => {
    expect(readFileSync(path.join(ROOT, script.OUTPUT), 'utf8')).toBe(await script.policySchemaModule(ROOT));
  });

  it('are used for the shipped schema files, and judge as compiling them at run time does', async () => {
    const pre = schemaValidators();
    expect(pre.precompiled).toBe(true);
    // The same bytes in other files are the same schemas.
    const same = schemaValidators(await copiedSchemas());
    expect(same.precompiled).toBe(true);
    // Any other bytes (here only the layout) are compiled at run time.
    const runtime = schemaValidators(await copiedSchemas((t) => `${t}\n`));
    expect(runtime.precompiled).toBe(false);
    const verdicts = samples().map((s) => {
      const a = pre.wpc(s);
      const aErrors = pre.wpc.errors;
      const b = runtime.wpc(s);
      return { a, b, aErrors, bErrors: runtime.wpc.errors };
    });
    expect(verdicts.filter((v) => v.a).length).toBe(shipped.length);
    for (const v of verdicts) {
      expect(v.a).toBe(v.b);
      expect(v.aErrors).toEqual(v.bErrors);
    }
    const groups = JSON.parse(readFileSync(path.join(REPO_POLICIES_DIR, 'groups.json'), 'utf8')) as object;
    for (const g of [groups, { ...groups, extra: 1 }, { groups_version: '1' }]) {
      expect(pre.groups(g)).toBe(runtime.groups(g));
      expect(pre.groups.errors).toEqual(runtime.groups.errors);
    }
  });

  it('a schema file changed after the build is enforced as it now reads', async () => {
    // A stricter schema: policy names at most three characters.
    const files = await copiedSchemas((t) => {
      const schema = JSON.parse(t) as { properties: { policy_name: Record<string, unknown> } };
      schema.properties.policy_name = { ...schema.properties.policy_name, type: 'string', maxLength: 3 };
      return JSON.stringify(schema);
    });
    const v = schemaValidators(files);
    expect(v.precompiled).toBe(false);
    expect(v.wpc(shipped[0])).toBe(false);
    expect(v.wpc.errors?.map((e) => `${e.instancePath} ${e.keyword}`)).toContain('/policy_name maxLength');
  });
});
