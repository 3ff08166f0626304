import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Script } from 'node:vm';
import type { FastifyInstance } from 'fastify';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { CONFIG_KEYS, FILE_SECRET_KEYS, loadConfig } from '../../src/config.js';
import { loadActionSecret } from '../../src/crypto/action-secret.js';
import { loadSigningKey } from '../../src/tokens/signing-key.js';
import { copyPolicies, tempDir } from '../helpers/fs.js';
import { createState } from '../helpers/state.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (rel: string) => readFileSync(path.join(ROOT, rel), 'utf8');
const KNOWN = new Set<string>(CONFIG_KEYS);
/** Settings a deployment passes that are not the program's own: Node's. */
const RUNTIME_ENV = new Set(['NODE_ENV']);
const PACKAGE = JSON.parse(read('package.json')) as { version: string; license: string };

// ---- the code's side: routes of the real app, and the image's defaults ----

let app: FastifyInstance;
let closeDb: () => Promise<void>;
beforeAll(async () => {
  const s = await createState(await copyPolicies());
  closeDb = () => s.d.close();
  app = buildApp({ db: s.db, keyRing: s.keyRing, policies: s.policies, log: s.log, adminToken: null });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await closeDb();
});

/** A probe's path must be a GET route the server serves, and answer without credentials. */
function expectProbeRoute(url: string) {
  const { pathname } = new URL(url, 'http://probe.invalid');
  expect(app.hasRoute({ method: 'GET', url: pathname }), `GET ${pathname} is a route`).toBe(true);
}

interface DockerfileStage {
  from: string;
  name: string | undefined;
  lines: string[];
}

/** The Dockerfile's instructions (continuation lines joined), by stage, with its global ARGs. */
function dockerfile(): { args: Map<string, string>; stages: DockerfileStage[] } {
  const joined = read('Dockerfile')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const args = new Map<string, string>();
  const stages: DockerfileStage[] = [];
  for (const line of joined) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from) stages.push({ from: from[1]!, name: from[2], lines: [] });
    else if (stages.length === 0) {
      const arg = /^ARG\s+(\w+)=(\S+)$/.exec(line);
      if (arg) args.set(arg[1]!, arg[2]!);
    } else stages.at(-1)!.lines.push(line);
  }
  return { args, stages };
}

/** `ENV A=1 B=2` of the final stage: what the image sets unless the deployment overrides it. */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of dockerfile()
    .stages.at(-1)!
    .lines.filter((l) => l.startsWith('ENV '))) {
    for (const m of line.slice(4).matchAll(/(\w+)=(\S+)/g)) env[m[1]!] = m[2]!;
  }
  return env;
}

/** The secret settings must come as files: never the value itself in a deployment file. */
function expectSecretsAsFiles(env: Record<string, string>, where: string) {
  for (const key of FILE_SECRET_KEYS) {
    expect(env[key], `${where} sets ${key} itself`).toBeUndefined();
  }
  for (const key of FILE_SECRET_KEYS.filter(
    (k) => k !== 'SIGNING_KEY_JWK' || env.SIGNING_KEY_FILE === undefined,
  )) {
    expect(env[`${key}_FILE`], `${where} gives ${key}_FILE`).toBeDefined();
  }
  for (const name of Object.keys(env)) {
    expect(KNOWN.has(name) || RUNTIME_ENV.has(name), `${where}: ${name} is a setting loadConfig reads`).toBe(
      true,
    );
  }
}

/** The URL a health-check command fetches, after checking it is JavaScript that compiles. */
function healthCheckUrl(js: string): URL {
  expect(() => new Script(js)).not.toThrow();
  // The image's check builds the URL from HOST and PORT (8080 when unset); compose's names it.
  const built = /'http:\/\/'\+a\+':'\+\(process\.env\.PORT\|\|(\d+)\)\+'([^']+)'/.exec(js);
  if (built) return new URL(`http://127.0.0.1:${built[1]}${built[2]}`);
  const literal = /fetch\('(http:\/\/[^']+)'\)/.exec(js);
  expect(literal, `a fetch in ${js}`).not.toBeNull();
  return new URL(literal![1]!);
}

// ---- the files ----

interface ComposeService {
  image?: string;
  environment?: Record<string, string>;
  secrets?: string[];
  ports?: string[];
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}
interface Compose {
  services: Record<string, ComposeService>;
  secrets: Record<string, { file: string }>;
  volumes: Record<string, unknown>;
}

// Compose files use YAML merge keys (`<<: *bot`), as Docker Compose reads them.
const compose = parse(read('deploy/compose.yaml'), { merge: true }) as Compose;
const bots = Object.entries(compose.services).filter(([, s]) => s.image?.startsWith('claw-approvals:'));

const K8S_DIR = 'deploy/kubernetes';
// Kubernetes reads manifests as YAML 1.1 (sigs.k8s.io/yaml): `defaultMode: 0440` is octal there.
const manifests = readdirSync(path.join(ROOT, K8S_DIR))
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((file) =>
    parseAllDocuments(read(`${K8S_DIR}/${file}`), { version: '1.1' }).map((doc) => ({
      file,
      doc: doc.toJS() as {
        kind: string;
        metadata?: { name: string; namespace?: string };
        [k: string]: unknown;
      },
    })),
  );
const byKind = (kind: string) => manifests.filter((m) => m.doc.kind === kind);

interface K8sContainer {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name: string; containerPort: number }[];
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  startupProbe?: { httpGet: { path: string; port: string | number } };
  livenessProbe?: { httpGet: { path: string; port: string | number } };
  readinessProbe?: { httpGet: { path: string; port: string | number } };
}
interface K8sPodSpec {
  securityContext: { runAsUser: number; fsGroup: number; runAsNonRoot: boolean };
  initContainers: K8sContainer[];
  containers: K8sContainer[];
  volumes: {
    name: string;
    secret?: { secretName: string; defaultMode: number; items: { key: string; path: string }[] };
    configMap?: { name: string };
    emptyDir?: { medium?: string };
  }[];
}

const deployment = byKind('Deployment')[0]!.doc as unknown as {
  metadata: { name: string; namespace: string };
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: K8sPodSpec };
  };
};
const pod = deployment.spec.template.spec;
const server = pod.containers[0]!;
const serverEnv = Object.fromEntries((server.env ?? []).map((e) => [e.name, e.value ?? '']));

/** Where the file a container sees at `file` comes from: which mount and volume, at what path in it. */
function locate(container: K8sContainer, file: string) {
  const mount = container.volumeMounts.find((m) => file.startsWith(`${m.mountPath}/`));
  if (!mount) return undefined;
  const volume = pod.volumes.find((v) => v.name === mount.name)!;
  return { mount, volume, rel: file.slice(mount.mountPath.length + 1) };
}
function volumeFileAt(container: K8sContainer, file: string) {
  const found = locate(container, file);
  expect(found, `${file} is under a volume mount of ${container.name}`).toBeDefined();
  return found!;
}
/** The init container that writes (its command's last argument) this file of this volume. */
function initWriting(volume: string, rel: string) {
  return pod.initContainers.find((c) => {
    const dest = c.command?.at(-1);
    const found = dest === undefined ? undefined : locate(c, dest);
    return found?.volume.name === volume && found.rel === rel;
  });
}

/** A unit file's `Key=value` lines, in order (repeated keys kept). */
function unitLines(text: string): [string, string][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('['))
    .map((l) => {
      const i = l.indexOf('=');
      return [l.slice(0, i), l.slice(i + 1)] as [string, string];
    });
}
const unit = unitLines(read('deploy/systemd/claw-approvals.service'));
const unitValues = (key: string) => unit.filter(([k]) => k === key).map(([, v]) => v);
const unitEnv = Object.fromEntries(
  unitValues('Environment').map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)]),
);

/** Runs deploy/make-secrets.sh into a fresh directory, as an operator would. */
async function makeSecrets(): Promise<{ dir: string; output: string }> {
  const dir = path.join(await tempDir('claw-secrets-'), 'secrets');
  const output = execFileSync('sh', [path.join(ROOT, 'deploy/make-secrets.sh'), dir], { encoding: 'utf8' });
  return { dir, output };
}

describe('Dockerfile', () => {
  const { args, stages } = dockerfile();

  it('builds and runs on Node 22 LTS, the base pinned by digest', () => {
    expect(args.get('NODE_IMAGE')).toMatch(/^node:22-bookworm-slim@sha256:[0-9a-f]{64}$/);
    expect(stages.map((s) => s.from)).toEqual(['${NODE_IMAGE}', '${NODE_IMAGE}']);
  });

  it('ships built JavaScript and production dependencies only: no TypeScript, sources or compiler', () => {
    const runtime = stages.at(-1)!.lines;
    const copies = runtime.filter((l) => l.startsWith('COPY'));
    expect(copies).toEqual([
      'COPY --from=build /app/package.json ./package.json',
      'COPY --from=build /app/node_modules ./node_modules',
      'COPY --from=build /app/dist/src ./dist/src',
      'COPY --from=build /app/dist/migrations ./dist/migrations',
      'COPY --from=build /app/packages/client/package.json ./packages/client/package.json',
      'COPY --from=build /app/packages/client/dist ./packages/client/dist',
      'COPY policies ./policies',
    ]);
    const build = stages[0]!.lines.join('\n');
    // Pruned, then what prune keeps of TypeScript (an optional peer of @mattermost/client) removed.
    expect(build).toMatch(/npm prune --omit=dev/);
    expect(build).toMatch(/rm -rf [^\n]*node_modules\/typescript /);
    // The program, as package.json's bin and the build's output name it.
    expect(runtime).toContain('ENTRYPOINT ["node", "dist/src/main.js"]');
    expect((JSON.parse(read('package.json')) as { bin: Record<string, string> }).bin['claw-approvals']).toBe(
      'dist/src/main.js',
    );
  });

  it('gives npm ci every workspace package.json the lockfile names, before it runs', () => {
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, unknown> };
    const workspaces = Object.keys(lock.packages).filter((k) => k !== '' && !k.includes('node_modules'));
    expect(workspaces.length).toBeGreaterThan(0);
    const build = stages[0]!.lines;
    const install = build.findIndex((l) => l.startsWith('RUN npm ci'));
    for (const ws of workspaces) {
      const copy = build.indexOf(`COPY ${ws}/package.json ${ws}/`);
      expect(copy, `COPY ${ws}/package.json`).toBeGreaterThanOrEqual(0);
      expect(copy).toBeLessThan(install);
    }
  });

  it('copies into the build stage only paths that exist in the repository', () => {
    for (const line of stages[0]!.lines.filter((l) => l.startsWith('COPY'))) {
      const sources = line.split(/\s+/).slice(1, -1);
      for (const source of sources) expect(() => readFileSync(path.join(ROOT, source))).not.toThrow(/ENOENT/);
    }
  });

  it('labels the image (OCI) with the version of package.json and its licence', () => {
    const labels = stages.at(-1)!.lines.find((l) => l.startsWith('LABEL'))!;
    for (const key of ['title', 'description', 'licenses', 'version', 'revision', 'created', 'base.name']) {
      expect(labels).toContain(`org.opencontainers.image.${key}=`);
    }
    expect(labels).toContain(`org.opencontainers.image.licenses="${PACKAGE.license}"`);
    expect(stages.at(-1)!.lines).toContain(`ARG VERSION=${PACKAGE.version}`);
  });

  it('runs as the unprivileged node user by number, checks /readyz on its own PORT', () => {
    const runtime = stages.at(-1)!.lines;
    expect(runtime).toContain('USER 1000:1000');
    const env = imageEnv();
    expect(Object.keys(env).filter((k) => !KNOWN.has(k) && !RUNTIME_ENV.has(k))).toEqual([]);
    expect(runtime).toContain(`EXPOSE ${env.PORT}`);
    const check = runtime.find((l) => l.startsWith('HEALTHCHECK'))!;
    const js = JSON.parse(check.slice(check.indexOf('CMD') + 3)) as string[];
    expect(js.slice(0, 2)).toEqual(['node', '-e']);
    const url = healthCheckUrl(js[2]!);
    expect(url.port).toBe(env.PORT);
    expect(url.pathname).toBe('/readyz');
    expectProbeRoute(url.pathname);
  });
});

describe('deploy/compose.yaml', () => {
  it('runs PostgreSQL and two replicas of the bot on it, once it is healthy', () => {
    expect(bots.map(([name]) => name)).toEqual(['bot-1', 'bot-2']);
    const postgres = compose.services.postgres!;
    expect(postgres.image).toMatch(/^postgres:\d+-bookworm@sha256:[0-9a-f]{64}$/);
    for (const [, bot] of bots) {
      expect(bot.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
      expect(bot.image).toBe(deployment.spec.template.spec.containers[0]!.image);
    }
  });

  for (const [name, bot] of bots) {
    it(`${name}: every setting is one loadConfig reads, every secret a file it was given`, () => {
      const env = bot.environment!;
      expectSecretsAsFiles(env, name);
      const fileSettings = Object.entries(env).filter(([k]) => k.endsWith('_FILE'));
      const used = new Set<string>();
      for (const [setting, file] of fileSettings) {
        const m = /^\/run\/secrets\/(\w+)$/.exec(file);
        expect(m, `${setting} is a compose secret`).not.toBeNull();
        expect(bot.secrets, `${name} is given ${m![1]}`).toContain(m![1]);
        expect(compose.secrets[m![1]!]?.file).toBe(`./secrets/${m![1]}`);
        used.add(m![1]!);
      }
      // No secret is handed over that no setting reads.
      expect([...used].sort()).toEqual([...bot.secrets!].sort());
    });

    it(`${name}: publishes PORT, checks /readyz there, mounts policies and data where the image reads them`, () => {
      const port = bot.environment!.PORT ?? imageEnv().PORT;
      for (const mapping of bot.ports!) expect(mapping.split(':').at(-1)).toBe(port);
      const [cmd, ...rest] = bot.healthcheck!.test;
      expect([cmd, rest[0], rest[1]]).toEqual(['CMD', 'node', '-e']);
      const url = healthCheckUrl(rest[2]!);
      expect(url.port).toBe(port);
      expect(url.pathname).toBe('/readyz');
      expectProbeRoute(url.pathname);
      const targets = bot.volumes!.map((v) => v.split(':')[1]);
      expect(targets).toContain(bot.environment!.POLICIES_DIR ?? imageEnv().POLICIES_DIR);
      expect(targets).toContain(bot.environment!.DATA_DIR ?? imageEnv().DATA_DIR);
    });
  }

  it('gives both replicas the same signing key, action secret and database, and each its own data', () => {
    const [a, b] = bots.map(([, s]) => s);
    for (const key of ['SIGNING_KEY_JWK_FILE', 'ACTION_SECRET_FILE', 'DATABASE_URL_FILE']) {
      expect(a!.environment![key]).toBeDefined();
      expect(b!.environment![key]).toBe(a!.environment![key]);
    }
    const dataOf = (s: ComposeService) => s.volumes!.find((v) => v.endsWith(':/data'))!.split(':')[0]!;
    expect(dataOf(a!)).not.toBe(dataOf(b!));
    for (const s of [a!, b!]) expect(Object.keys(compose.volumes)).toContain(dataOf(s));
    expect(a!.ports![0]!.split(':').slice(0, -1)).not.toEqual(b!.ports![0]!.split(':').slice(0, -1));
  });

  it("reaches the PostgreSQL the compose file starts, with make-secrets.sh's password", async () => {
    const pg = compose.services.postgres!;
    expect(pg.environment!.POSTGRES_PASSWORD_FILE).toBe('/run/secrets/postgres_password');
    expect(pg.secrets).toEqual(['postgres_password']);
    const { dir } = await makeSecrets();
    const url = new URL(readFileSync(path.join(dir, 'database_url'), 'utf8').trim());
    expect(url.hostname).toBe('postgres');
    expect(Object.keys(compose.services)).toContain(url.hostname);
    expect(url.username).toBe(pg.environment!.POSTGRES_USER);
    expect(url.pathname).toBe(`/${pg.environment!.POSTGRES_DB}`);
    expect(url.password).toBe(readFileSync(path.join(dir, 'postgres_password'), 'utf8').trim());
  });
});

describe('deploy/make-secrets.sh', () => {
  it('makes every secret compose reads that is not Mattermost’s, and they start a replica’s configuration', async () => {
    const { dir, output } = await makeSecrets();
    const made = readdirSync(dir).sort();
    const mattermost = ['mattermost_command_token', 'mattermost_token'];
    expect([...made, ...mattermost].sort()).toEqual(Object.keys(compose.secrets).sort());
    // It says which two are left to write, and writes no placeholder for them.
    for (const m of mattermost) expect(output).toContain(`missing ${dir}/${m}`);
    await writeFile(path.join(dir, 'mattermost_token'), 'bot-access-token\n');
    await writeFile(path.join(dir, 'mattermost_command_token'), 'abcdefghijklmnopqrstuvwxyz\n');
    const env = Object.fromEntries(
      Object.entries(bots[0]![1].environment!).map(([k, v]) => [k, v.replace('/run/secrets', dir)]),
    );
    env.MATTERMOST_URL = 'https://chat.example.com';
    env.PUBLIC_URL = 'https://claw.example.com';
    const config = loadConfig(env, '/srv');
    expect(config.databaseUrl).toMatch(/^postgres:\/\/claw:[0-9a-f]{48}@postgres:5432\/claw$/);
    expect(config.adminToken).toMatch(/^[0-9a-f]{64}$/);
    expect(config.metricsToken).toMatch(/^[0-9a-f]{64}$/);
    // The JWK is an Ed25519 key whose public half matches its private half.
    expect(config.signingKey.kind).toBe('jwk');
    const { key } = await loadSigningKey(config.signingKey);
    expect(key.did).toMatch(/^did:key:z6Mk/);
    // The action secret: mode 0600, 32 bytes, as serve would have made it.
    expect(await loadActionSecret(config.actionSecretFile!)).toHaveLength(32);
  });

  it('never replaces a secret that exists', async () => {
    const { dir } = await makeSecrets();
    const before = Object.fromEntries(
      readdirSync(dir).map((f) => [f, readFileSync(path.join(dir, f), 'utf8')]),
    );
    const again = execFileSync('sh', [path.join(ROOT, 'deploy/make-secrets.sh'), dir], { encoding: 'utf8' });
    expect(again).not.toContain('created');
    for (const [f, content] of Object.entries(before))
      expect(readFileSync(path.join(dir, f), 'utf8')).toBe(content);
  });
});

describe('deploy/kubernetes', () => {
  it('runs two replicas behind a Service that reaches their PORT', () => {
    expect(deployment.spec.replicas).toBe(2);
    const labels = deployment.spec.template.metadata.labels;
    expect(deployment.spec.selector.matchLabels).toEqual(labels);
    const service = byKind('Service')[0]!.doc as unknown as {
      spec: { selector: Record<string, string>; ports: { targetPort: string | number }[] };
    };
    for (const [k, v] of Object.entries(service.spec.selector)) expect(labels[k]).toBe(v);
    const port = (ref: string | number) =>
      typeof ref === 'number' ? ref : server.ports!.find((p) => p.name === ref)!.containerPort;
    expect(String(port(service.spec.ports[0]!.targetPort))).toBe(serverEnv.PORT);
    expect(server.ports!.map((p) => String(p.containerPort))).toEqual([serverEnv.PORT]);
  });

  it('probes liveness on /healthz and readiness on /readyz, routes of the server, on its PORT', () => {
    expect(server.livenessProbe!.httpGet.path).toBe('/healthz');
    expect(server.readinessProbe!.httpGet.path).toBe('/readyz');
    for (const probe of [server.startupProbe!, server.livenessProbe!, server.readinessProbe!]) {
      expectProbeRoute(probe.httpGet.path);
      const port = probe.httpGet.port;
      const number =
        typeof port === 'number' ? port : server.ports!.find((p) => p.name === port)?.containerPort;
      expect(String(number)).toBe(serverEnv.PORT);
    }
  });

  it('gives every secret as a file of the Secret, mounted read-only, never as a value', () => {
    expectSecretsAsFiles(serverEnv, 'the Deployment');
    const secretManifest = byKind('Secret')[0]!.doc as unknown as { stringData: Record<string, string> };
    const files = Object.entries(serverEnv).filter(([k]) => k.endsWith('_FILE'));
    const itemsUsed = new Set<string>();
    for (const [setting, file] of files) {
      const seen = volumeFileAt(server, file);
      expect(seen.mount.readOnly, `${setting}'s mount is read-only`).toBe(true);
      let { volume, rel } = seen;
      if (volume.emptyDir) {
        // Copied there by an init container, from the Secret.
        const init = initWriting(volume.name, rel);
        expect(init, `an init container writes ${file}`).toBeDefined();
        ({ volume, rel } = volumeFileAt(init!, init!.command!.at(-2)!));
      }
      expect(volume.secret?.secretName).toBe(byKind('Secret')[0]!.doc.metadata!.name);
      const item = volume.secret!.items.find((i) => i.path === rel);
      expect(item, `${rel} is an item of the Secret`).toBeDefined();
      expect(Object.keys(secretManifest.stringData)).toContain(item!.key);
      itemsUsed.add(item!.key);
    }
    expect([...itemsUsed].sort()).toEqual(Object.keys(secretManifest.stringData).sort());
    // Readable by the app's group (fsGroup) and nobody else; the app runs as the image's user.
    const secretVolume = pod.volumes.find((v) => v.secret)!;
    expect(secretVolume.secret!.defaultMode).toBe(0o440);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 });
  });

  it('copies the action secret with the private mode its loader demands', () => {
    const init = pod.initContainers.find((c) => c.name === 'action-secret')!;
    expect(init.command!.slice(0, 3)).toEqual(['install', '-m', '0600']);
    const keys = pod.volumes.find(
      (v) => v.name === volumeFileAt(server, serverEnv.ACTION_SECRET_FILE!).volume.name,
    )!;
    expect(keys.emptyDir).toEqual({ medium: 'Memory', sizeLimit: '1Mi' });
  });

  it('mounts the policies ConfigMap at POLICIES_DIR and data at DATA_DIR', () => {
    const policies = server.volumeMounts.find((m) => m.mountPath === serverEnv.POLICIES_DIR)!;
    const configMap = byKind('ConfigMap')[0]!.doc.metadata!.name;
    expect(pod.volumes.find((v) => v.name === policies.name)!.configMap!.name).toBe(configMap);
    expect(server.volumeMounts.map((m) => m.mountPath)).toContain(serverEnv.DATA_DIR);
  });

  it('keeps every object in one namespace, and kustomization lists all but the example Secret', () => {
    const kustomization = parse(read(`${K8S_DIR}/kustomization.yaml`)) as {
      namespace: string;
      resources: string[];
    };
    const files = [...new Set(manifests.map((m) => m.file))].filter(
      (f) => f !== 'kustomization.yaml' && f !== 'secret.example.yaml',
    );
    expect([...kustomization.resources].sort()).toEqual(files.sort());
    for (const { doc } of manifests.filter(
      (m) => m.doc.kind !== 'Kustomization' && m.doc.kind !== 'Namespace',
    )) {
      expect(doc.metadata!.namespace).toBe(kustomization.namespace);
    }
    expect(byKind('Namespace')[0]!.doc.metadata!.name).toBe(kustomization.namespace);
  });

  it('the example Secret, applied by mistake, stops the pods rather than running on known values', async () => {
    const secret = byKind('Secret')[0]!.doc as unknown as { stringData: Record<string, string> };
    const dir = await tempDir();
    for (const [key, value] of Object.entries(secret.stringData))
      await writeFile(path.join(dir, key), value, { mode: 0o600 });
    for (const [setting, file] of Object.entries(serverEnv).filter(([k]) => k.endsWith('_FILE'))) {
      const local = path.join(dir, path.basename(file));
      if (setting === 'ACTION_SECRET_FILE') {
        await expect(loadActionSecret(local)).rejects.toMatchObject({ code: 'ERR_KEY_INVALID' });
        continue;
      }
      const extra = setting === 'MATTERMOST_TOKEN_FILE' ? { MATTERMOST_URL: 'https://chat.example.com' } : {};
      expect(() => loadConfig({ ...extra, [setting]: local }), setting).toThrow(/invalid configuration/);
    }
  });
});

describe('deploy/systemd/claw-approvals.service', () => {
  it('sets only settings loadConfig reads, every secret a credential file', () => {
    expectSecretsAsFiles(unitEnv, 'the unit');
    const credentials = new Map(
      unitValues('LoadCredential').map((v) => [v.slice(0, v.indexOf(':')), v.slice(v.indexOf(':') + 1)]),
    );
    const used = new Set<string>();
    // A file copied before start (ExecStartPre=install -m 0600 %d/<credential> <file>) counts as its credential.
    const copies = new Map(
      unitValues('ExecStartPre')
        .map((v) => /^\/usr\/bin\/install -m 0600 %d\/(\w+) (\S+)$/.exec(v))
        .filter((m) => m !== null)
        .map((m) => [m[2]!, m[1]!]),
    );
    for (const [setting, file] of Object.entries(unitEnv).filter(([k]) => k.endsWith('_FILE'))) {
      const name = /^%d\/(\w+)$/.exec(file)?.[1] ?? copies.get(file);
      expect(name, `${setting} is in $CREDENTIALS_DIRECTORY (%d), or copied from it`).toBeDefined();
      expect(credentials.has(name!), `LoadCredential=${name}`).toBe(true);
      used.add(name!);
    }
    // A copy lives in the service's own runtime directory (memory, removed when it stops), private.
    for (const file of copies.keys()) {
      expect(file.startsWith(`%t/${unitValues('RuntimeDirectory')[0]}/`), file).toBe(true);
    }
    expect(unitValues('RuntimeDirectoryMode')).toEqual(['0700']);
    expect([...used].sort()).toEqual([...credentials.keys()].sort());
    // The credential names are the files make-secrets.sh and compose use.
    for (const name of credentials.keys()) expect(Object.keys(compose.secrets)).toContain(name);
  });

  it('runs the built program as its own unprivileged user, hardened, with its state as DATA_DIR', () => {
    expect(unitValues('ExecStart')).toEqual(['/usr/bin/node /opt/claw-approvals/dist/src/main.js serve']);
    const expected: Record<string, string> = {
      DynamicUser: 'yes',
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      CapabilityBoundingSet: '',
      RestrictSUIDSGID: 'yes',
      StateDirectory: 'claw-approvals',
      StateDirectoryMode: '0700',
      UMask: '0077',
    };
    for (const [key, value] of Object.entries(expected)) expect(unitValues(key), key).toEqual([value]);
    expect(unitEnv.DATA_DIR).toBe('%S/claw-approvals');
    expect(unitValues('WorkingDirectory')).toEqual(['%S/claw-approvals']);
    expect(Number(unitEnv.PORT)).toBeGreaterThan(0);
  });
});
