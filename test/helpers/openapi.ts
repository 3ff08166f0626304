import { isDeepStrictEqual } from 'node:util';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export interface Operation {
  operationId?: string;
  summary?: string;
  tags?: string[];
  parameters?: { name: string; in: string; required?: boolean; schema?: object }[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: object }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: object }> }>;
  security?: Record<string, string[]>[];
}

export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components?: { securitySchemes?: Record<string, object>; schemas?: Record<string, object> };
  tags?: { name: string }[];
  'x-undocumented-routes'?: { path: string; methods: string[]; reason: string }[];
}

/** `/v1/jobs/:id` as OpenAPI writes it: `/v1/jobs/{id}`. */
export const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');

/**
 * Every (method, route) the router serves, read from the router's own table (`printRoutes`),
 * not from any hook: a route the OpenAPI plugin never saw is still listed here.
 */
export function routerTable(app: FastifyInstance): { method: string; url: string }[] {
  const routes: { method: string; url: string }[] = [];
  const path: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(\S+)(?: \(([^)]+)\))?$/.exec(line);
    if (!m) continue;
    path.length = m[1]!.length / 4;
    path.push(m[2]!);
    for (const method of m[3]?.split(', ') ?? []) routes.push({ method, url: path.join('') });
  }
  return routes;
}

export interface Answer {
  method: string;
  /** The route template (`/v1/jobs/:id`); undefined when no route matched (404). */
  route: string | undefined;
  status: number;
  contentType: string;
  requestId: string | undefined;
  /** What the handler (or error handler) returned, before the response schema serialized it. */
  before: unknown;
  body: string;
}

/**
 * Records every answer of `app` (call before it is ready): the object a handler returned, and
 * the text the response schema made of it, so a test can tell whether the schema dropped a field.
 */
export function recordAnswers(app: FastifyInstance): Answer[] {
  const answers: Answer[] = [];
  const before = new WeakMap<FastifyRequest, unknown>();
  app.addHook('preSerialization', async (req, _reply, payload) => {
    before.set(req, payload);
    return payload;
  });
  app.addHook('onSend', async (req, reply, payload) => {
    answers.push({
      method: req.method,
      route: req.routeOptions.url,
      status: reply.statusCode,
      contentType: String(reply.getHeader('content-type') ?? ''),
      requestId: reply.getHeader('x-request-id') as string | undefined,
      before: before.get(req),
      body: typeof payload === 'string' ? payload : String(payload),
    });
    return payload;
  });
  return answers;
}

const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
addFormats.default(ajv);
const compiled = new Map<string, ValidateFunction>();

/** Compiles a schema of the document as JSON Schema 2020-12 (strict): throws when it is none. */
export function compileSchema(schema: object): ValidateFunction {
  const key = JSON.stringify(schema);
  let v = compiled.get(key);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(key, v);
  }
  return v;
}

/**
 * What is wrong with `answers` by the document: a status the route does not list, a content type
 * it does not declare, a body its schema refuses, or a field the response schema dropped from
 * what the handler returned. Routes in `skip` (undocumented) are not checked.
 */
export function undocumentedAnswers(
  doc: OpenApiDocument,
  answers: readonly Answer[],
  skip: ReadonlySet<string> = new Set(),
): string[] {
  const problems: string[] = [];
  for (const a of answers) {
    if (a.method === 'HEAD' || a.route === undefined || skip.has(a.route)) continue;
    const where = `${a.method} ${a.route} → ${a.status}`;
    const op = doc.paths[openApiPath(a.route)]?.[a.method.toLowerCase()];
    if (!op) {
      problems.push(`${where}: the route is not in the document`);
      continue;
    }
    // An exact status first, then its range (`4XX`), as OpenAPI resolves them.
    const response = op.responses?.[String(a.status)] ?? op.responses?.[`${String(a.status)[0]}XX`];
    if (!response) {
      problems.push(`${where}: status not documented (${a.body.slice(0, 120)})`);
      continue;
    }
    const media = a.contentType.split(';')[0]!.trim();
    const schema = response.content?.[media]?.schema;
    if (!schema) {
      problems.push(`${where}: content type ${media} not documented`);
      continue;
    }
    if (media !== 'application/json') continue;
    const body: unknown = JSON.parse(a.body);
    const validate = compileSchema(schema);
    if (!validate(body))
      problems.push(`${where}: ${ajv.errorsText(validate.errors)} in ${a.body.slice(0, 200)}`);
    if (a.before !== undefined && !isDeepStrictEqual(JSON.parse(JSON.stringify(a.before)), body))
      problems.push(
        `${where}: the response schema changed what the handler returned: ${JSON.stringify(a.before)}`,
      );
  }
  return problems;
}
