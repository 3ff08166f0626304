import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { CLIENT_ROUTES } from '@claw-approvals/client';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import { ERROR_STATUS, type AppErrorCode } from '../../src/errors.js';
import { OPENAPI_PATH, UNDOCUMENTED_ROUTES } from '../../src/http/openapi.js';
import type { RateLimits } from '../../src/http/rate-limit.js';
import { AppMetrics } from '../../src/metrics/app-metrics.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, type TestEngine } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import {
  type Answer,
  compileSchema,
  type OpenApiDocument,
  openApiPath,
  recordAnswers,
  routerTable,
  undocumentedAnswers,
} from '../helpers/openapi.js';

const ADMIN = 'admin-token-for-openapi-tests-0123456789';
const COMMAND_TOKEN = 'cmdtoken0123456789abcdefgh';
const PACKAGE = JSON.parse(await fs.readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
/** POST routes that read no body, and why. */
const NO_BODY: Record<string, string> = {
  'POST /v1/jobs/{id}/steps/{step}/token': 'a claim names its job and step in the path',
};

const opened: { app: FastifyInstance; e: TestEngine }[] = [];
afterEach(async () => {
  for (const { app, e } of opened.splice(0)) {
    await app.close();
    await e.close();
  }
});

/**
 * The app with every part a server can have: the engine, ADMIN_TOKEN, buttons, the slash
 * command, metrics, a readiness check. Routes other code adds to `buildApp` show up here.
 */
async function fullApp(opts: { rateLimits?: Partial<RateLimits>; engine?: boolean } = {}) {
  const e = await createTestEngine();
  const withEngine = opts.engine !== false;
  const app = buildApp({
    db: e.ctx.db,
    keyRing: e.ctx.keyRing,
    policies: e.ctx.policies,
    log: silentLogger(),
    adminToken: ADMIN,
    rateLimits: opts.rateLimits ?? { perCaller: 10_000, failedAuth: 10_000, perAddress: 10_000 },
    readinessChecks: { mattermost: async () => ({ ok: true }) },
    ...(withEngine
      ? {
          engine: e.ctx,
          mattermostActions: {
            secret: new Uint8Array(randomBytes(32)),
            publicUrl: 'http://127.0.0.1:9',
            chat: { openDialog: async () => {} },
          },
          slashCommand: { token: COMMAND_TOKEN, chat: null },
          metrics: new AppMetrics({ version: 'test', db: e.ctx.db, chat: false, defaultMetrics: false }),
        }
      : {}),
  });
  opened.push({ app, e });
  // Routes declared while the app boots (all of them, unless one is declared on the root at once).
  const declared: RouteOptions[] = [];
  app.addHook('onRoute', (r) => void declared.push(r));
  const answers = recordAnswers(app);
  await app.ready();
  const res = await app.inject(OPENAPI_PATH);
  expect(res.statusCode).toBe(200);
  const doc = res.json() as OpenApiDocument;
  answers.length = 0;
  return { app, e, doc, declared, answers, table: routerTable(app) };
}

const operations = (doc: OpenApiDocument) =>
  Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ path, method: method.toUpperCase(), op })),
  );

const isUndocumented = (url: string) => Object.hasOwn(UNDOCUMENTED_ROUTES, url);

/** A request to every route the router serves (but the undocumented), with sample parameters. */
async function sweep(
  app: FastifyInstance,
  table: { method: string; url: string }[],
  headers: Record<string, string>,
) {
  for (const { method, url } of table) {
    if (method === 'HEAD' || isUndocumented(url)) continue;
    const path = url.replace(/:(\w+)/g, (_m, name: string) => (name === 'step' ? 'post-summary' : '1'));
    await app.inject({
      method: method as 'GET' | 'POST',
      url: path,
      headers,
      ...(method === 'POST' ? { payload: {} } : {}),
    });
  }
}

describe(`GET /openapi.json (${dialectName})`, () => {
  it('lists every route the router serves, each method, and nothing it does not serve', async () => {
    const { doc, declared, table } = await fullApp();
    // The router's table is read right: every route fastify announced is in it.
    for (const r of declared)
      for (const method of ([] as string[]).concat(r.method))
        expect(table, `${method} ${r.url}`).toContainEqual({ method, url: r.url });

    const problems: string[] = [];
    for (const { method, url } of table) {
      if (method === 'HEAD') {
        if (!table.some((r) => r.method === 'GET' && r.url === url)) problems.push(`HEAD ${url} without GET`);
        continue;
      }
      if (isUndocumented(url)) {
        if (doc.paths[openApiPath(url)]) problems.push(`${url} is undocumented by choice but in paths`);
        const listed = doc['x-undocumented-routes']?.find((r) => r.path === url);
        if (!listed?.methods.includes(method) || listed.reason !== UNDOCUMENTED_ROUTES[url])
          problems.push(`${method} ${url} is not listed in x-undocumented-routes with its reason`);
        continue;
      }
      if (!doc.paths[openApiPath(url)]?.[method.toLowerCase()])
        problems.push(
          `${method} ${url} is served but not in /openapi.json: declare it inside app.register(...) ` +
            '(the OpenAPI plugin learns routes as they are declared), or list it in UNDOCUMENTED_ROUTES with why',
        );
    }
    for (const { path, method } of operations(doc)) {
      const url = path.replace(/\{(\w+)\}/g, ':$1');
      if (!table.some((r) => r.method === method && r.url === url))
        problems.push(`${method} ${path} is not served`);
    }
    expect(problems).toEqual([]);
    // The routes this product is known to serve, at least.
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/healthz',
        '/readyz',
        '/.well-known/jwks.json',
        '/openapi.json',
        '/v1/wpc/{hash}',
        '/v1/jobs',
        '/v1/jobs/{id}',
        '/v1/jobs/{id}/steps/{step}/token',
        '/v1/jobs/{id}/steps/{step}/result',
        '/v1/jobs/{id}/close',
        '/v1/tokens/introspect',
        '/v1/tokens/redeem',
        '/v1/tokens/revoke',
        '/v1/bundles/{id}',
        '/v1/plans/{plan_hash_b64u}',
        '/v1/admin/pause',
        '/v1/admin/resume',
        '/v1/mattermost/command',
        '/v1/mattermost/actions',
        '/v1/mattermost/dialogs',
      ]),
    );
  });

  it('is a structurally valid OpenAPI 3.1 document', async () => {
    const { doc } = await fullApp();
    const problems: string[] = [];
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info).toMatchObject({ title: 'claw-approvals', version: PACKAGE.version });
    const schemes = doc.components?.securitySchemes ?? {};
    const tags = new Set((doc.tags ?? []).map((t) => t.name));
    const ids = new Set<string>();
    const schemas: { where: string; schema: object }[] = [];
    for (const { path, method, op } of operations(doc)) {
      const where = `${method} ${path}`;
      if (!path.startsWith('/') || path.includes(':'))
        problems.push(`${where}: path not templated as OpenAPI`);
      if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) problems.push(`${where}: method`);
      if (!op.operationId || ids.has(op.operationId))
        problems.push(`${where}: operationId missing or repeated`);
      ids.add(op.operationId ?? '');
      const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!).sort();
      const params = op.parameters ?? [];
      const inPath = params.filter((p) => p.in === 'path');
      if (!isDeepEqual(inPath.map((p) => p.name).sort(), templated))
        problems.push(`${where}: path parameters`);
      for (const p of params) {
        if (!['path', 'query', 'header', 'cookie'].includes(p.in) || !p.name || !p.schema)
          problems.push(`${where}: parameter ${p.name}`);
        if (p.in === 'path' && p.required !== true)
          problems.push(`${where}: path parameter ${p.name} not required`);
        if (p.schema) schemas.push({ where: `${where} parameter ${p.name}`, schema: p.schema });
      }
      for (const [media, m] of Object.entries(op.requestBody?.content ?? {})) {
        if (!m.schema) problems.push(`${where}: request ${media} without schema`);
        else schemas.push({ where: `${where} request ${media}`, schema: m.schema });
      }
      const responses = Object.entries(op.responses ?? {});
      if (responses.length === 0) problems.push(`${where}: no responses`);
      for (const [status, r] of responses) {
        if (!/^[1-5]\d\d$/.test(status)) problems.push(`${where}: response key ${status}`);
        if (typeof r.description !== 'string' || r.description === '')
          problems.push(`${where} ${status}: description`);
        for (const [media, m] of Object.entries(r.content ?? {}))
          if (m.schema) schemas.push({ where: `${where} ${status} ${media}`, schema: m.schema });
      }
      for (const requirement of op.security ?? [])
        for (const name of Object.keys(requirement))
          if (!Object.hasOwn(schemes, name)) problems.push(`${where}: unknown security scheme ${name}`);
      for (const tag of op.tags ?? []) if (!tags.has(tag)) problems.push(`${where}: tag ${tag} not declared`);
    }
    for (const { where, schema } of schemas) {
      try {
        compileSchema(schema);
      } catch (err) {
        problems.push(`${where}: not a JSON Schema 2020-12: ${(err as Error).message}`);
      }
    }
    // Every $ref points at something in the document.
    const text = JSON.stringify(doc);
    for (const [, ref] of text.matchAll(/"\$ref":"([^"]+)"/g)) {
      const target = ref!
        .replace(/^#\//, '')
        .split('/')
        .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], doc);
      if (target === undefined) problems.push(`$ref ${ref} resolves to nothing`);
    }
    expect(problems).toEqual([]);
  });

  it('gives every route complete schemas: parameters, body, a success and each error code it answers', async () => {
    const { doc } = await fullApp();
    const problems: string[] = [];
    for (const { path, method, op } of operations(doc)) {
      const where = `${method} ${path}`;
      if (!op.summary) problems.push(`${where}: summary`);
      if (!op.tags?.length) problems.push(`${where}: tags`);
      if (method === 'POST' && !op.requestBody && !NO_BODY[where])
        problems.push(`${where}: no request body schema`);
      const responses = op.responses ?? {};
      if (!Object.keys(responses).some((s) => s.startsWith('2')))
        problems.push(`${where}: no success answer`);
      for (const [status, r] of Object.entries(responses)) {
        if (Number(status) < 400) continue;
        // 503 of /readyz is its not-ready answer, not an error.
        if (path === '/readyz' && status === '503') continue;
        const codes = errorCodesOf(r.content?.['application/json']?.schema);
        if (codes === null) {
          problems.push(
            `${where} ${status}: not the error shape {"error":{"code","message"}} with its codes`,
          );
          continue;
        }
        for (const code of codes)
          if (ERROR_STATUS[code as AppErrorCode] !== Number(status))
            problems.push(
              `${where} ${status}: ${code} is answered with ${ERROR_STATUS[code as AppErrorCode]}`,
            );
        if (!r.description?.includes(codes[0]!))
          problems.push(`${where} ${status}: description names no code`);
      }
      if (!errorCodesOf(responses['500']?.content?.['application/json']?.schema)?.includes('ERR_INTERNAL'))
        problems.push(`${where}: 500 ERR_INTERNAL not documented`);
      const validates = (op.parameters ?? []).length > 0 || (op.requestBody !== undefined && !NO_BODY[where]);
      const badRequest = errorCodesOf(responses['400']?.content?.['application/json']?.schema) ?? [];
      if (validates && !badRequest.includes('ERR_VALIDATION')) problems.push(`${where}: 400 ERR_VALIDATION`);
      if (method === 'POST')
        for (const [status, code] of [
          ['413', 'ERR_PAYLOAD_TOO_LARGE'],
          ['415', 'ERR_UNSUPPORTED_MEDIA_TYPE'],
        ] as const)
          if (!errorCodesOf(responses[status]?.content?.['application/json']?.schema)?.includes(code))
            problems.push(`${where}: ${status} ${code}`);
    }
    expect(problems).toEqual([]);
  });

  it('documents every answer each route gives: anonymous, with an agent key, with ADMIN_TOKEN, over budget', async () => {
    const full = await fullApp();
    const agent = await createAgent(full.e.ctx.db, { id: 'agent:ops-mattermost-1', at: full.e.ctx.clock() });
    const anonymous = await sweepAnswers(full, {});
    const asAgent = await sweepAnswers(full, { authorization: `Bearer ${agent.key}` });
    const asAdmin = await sweepAnswers(full, { authorization: `Bearer ${ADMIN}` });
    const asCommand = await sweepAnswers(full, { authorization: `Token ${COMMAND_TOKEN}` });
    // Budgets of one: every rate-limited route answers 429 the second time.
    const tight = await fullApp({ rateLimits: { perCaller: 1, failedAuth: 1, perAddress: 1 } });
    await sweep(tight.app, tight.table, {});
    await sweep(tight.app, tight.table, {});
    const overBudget = [...tight.answers];
    const all = [...anonymous, ...asAgent, ...asAdmin, ...asCommand, ...overBudget];
    expect(undocumentedAnswers(full.doc, all, new Set(Object.keys(UNDOCUMENTED_ROUTES)))).toEqual([]);
    // The sweep reached the answers it is for.
    expect(overBudget.filter((a) => a.status === 429).length).toBeGreaterThan(10);
    expect(anonymous.filter((a) => a.status === 401).length).toBeGreaterThan(10);
    for (const a of all) expect(a.requestId, `${a.method} ${a.route}`).toMatch(/^[0-9a-f-]{36}$/);

    // The security each operation declares is the one it enforces on an anonymous caller.
    const problems: string[] = [];
    for (const { path, method, op } of operations(full.doc)) {
      const answer = anonymous.find((a) => a.method === method && a.route && openApiPath(a.route) === path);
      if (!answer) {
        problems.push(`${method} ${path}: not reached`);
        continue;
      }
      const required =
        (op.security ?? []).length > 0 && !(op.security ?? []).some((s) => Object.keys(s).length === 0);
      if (required !== (answer.status === 401))
        problems.push(
          `${method} ${path}: declares ${JSON.stringify(op.security ?? [])}, anonymous got ${answer.status}`,
        );
    }
    expect(problems).toEqual([]);
  });

  it('has every route of the typed client, with its path and query parameters', async () => {
    const { doc } = await fullApp();
    for (const [name, route] of Object.entries(CLIENT_ROUTES)) {
      const op = doc.paths[route.path]?.[route.method.toLowerCase()];
      expect(op, `${name}: ${route.method} ${route.path}`).toBeDefined();
      const params = op!.parameters ?? [];
      expect(
        params
          .filter((p) => p.in === 'path')
          .map((p) => p.name)
          .sort(),
        `${name} path parameters`,
      ).toEqual([...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort());
      const query = params.filter((p) => p.in === 'query').map((p) => p.name);
      for (const q of route.query) expect(query, `${name} query`).toContain(q);
    }
  });

  it('documents what a server without the engine serves, and only that', async () => {
    const { doc, table } = await fullApp({ engine: false });
    const served = [
      ...new Set(table.filter((r) => r.method !== 'HEAD').map((r) => openApiPath(r.url))),
    ].sort();
    expect(Object.keys(doc.paths).sort()).toEqual(served);
    expect(served).toEqual([
      '/.well-known/jwks.json',
      '/healthz',
      '/openapi.json',
      '/readyz',
      '/v1/wpc/{hash}',
    ]);
  });

  it('marks the optional bodies optional and the others required', async () => {
    const { doc } = await fullApp();
    expect(doc.paths['/v1/jobs/{id}/close']!.post!.requestBody!.required).toBe(false);
    expect(doc.paths['/v1/admin/pause']!.post!.requestBody!.required).toBe(false);
    expect(doc.paths['/v1/admin/resume']!.post!.requestBody!.required).toBe(false);
    expect(doc.paths['/v1/jobs']!.post!.requestBody!.required).toBe(true);
    expect(doc.paths['/v1/tokens/redeem']!.post!.requestBody!.required).toBe(true);
  });

  it('is served without a credential, cacheable, and rate limited by address like the other open routes', async () => {
    const { app } = await fullApp({ rateLimits: { perAddress: 2 } });
    const from = { url: OPENAPI_PATH, remoteAddress: '10.0.0.1' };
    for (let i = 0; i < 2; i += 1) {
      const ok = await app.inject(from);
      expect(ok.statusCode).toBe(200);
      expect(ok.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(ok.headers['cache-control']).toBe('public, max-age=300');
    }
    const refused = await app.inject(from);
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toEqual({ error: { code: 'ERR_RATE_LIMITED', message: expect.any(String) } });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    // Another address has its own budget.
    expect((await app.inject({ url: OPENAPI_PATH, remoteAddress: '10.0.0.2' })).statusCode).toBe(200);
  });
});

async function sweepAnswers(
  full: Awaited<ReturnType<typeof fullApp>>,
  headers: Record<string, string>,
): Promise<Answer[]> {
  full.answers.length = 0;
  await sweep(full.app, full.table, headers);
  return full.answers.splice(0);
}

/** The codes of an error-shaped response schema, or null when it is not the error shape. */
function errorCodesOf(schema: object | undefined): string[] | null {
  const s = schema as
    | {
        type?: string;
        required?: string[];
        properties?: {
          error?: { required?: string[]; properties?: { code?: { enum?: unknown[] }; message?: object } };
        };
      }
    | undefined;
  const error = s?.properties?.error;
  const codes = error?.properties?.code?.enum;
  if (
    s?.type !== 'object' ||
    !s.required?.includes('error') ||
    !error?.required?.includes('code') ||
    !error.required.includes('message') ||
    !error.properties?.message ||
    !Array.isArray(codes) ||
    codes.length === 0 ||
    !codes.every((c) => typeof c === 'string')
  )
    return null;
  return codes as string[];
}

function isDeepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
