import type { IncomingMessage, ServerResponse } from 'node:http';
import { AppError, appErrorBody, invalidBodyParam } from '../app-error.js';
import { newId } from '../ids.js';

/** Mattermost's defaults for `page` / `per_page` (web/params.go). */
export const PER_PAGE_DEFAULT = 60;
export const PER_PAGE_MAXIMUM = 200;
/** web/handlers.go caps request bodies at ServiceSettings.MaximumPayloadSizeBytes (300000 by default). */
const MAX_BODY_BYTES = 300_000 + 512;

export type RecordRequest = (method: string, path: string, status: number) => void;

/** One HTTP exchange: the parsed request and a way to answer it exactly once. */
export class Exchange {
  readonly url: URL;
  readonly requestId = newId();
  params: Record<string, string> = {};
  userId = '';

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly record: RecordRequest,
    readonly versionId: string,
  ) {
    this.url = new URL(req.url ?? '/', 'http://sandbox.invalid');
  }

  get method(): string {
    return (this.req.method ?? 'GET').toUpperCase();
  }

  get path(): string {
    return this.url.pathname;
  }

  query(name: string): string {
    return this.url.searchParams.get(name) ?? '';
  }

  /** web/params.go: a bad or negative page is 0, a bad per_page is 60, a large one is 200. */
  paging(): { page: number; perPage: number } {
    const page = Number.parseInt(this.query('page'), 10);
    const perPage = Number.parseInt(this.query('per_page'), 10);
    return {
      page: Number.isInteger(page) && page >= 0 ? page : 0,
      perPage:
        Number.isInteger(perPage) && perPage >= 0 ? Math.min(perPage, PER_PAGE_MAXIMUM) : PER_PAGE_DEFAULT,
    };
  }

  async rawBody(): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of this.req) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > MAX_BODY_BYTES)
        throw new AppError(
          'api.context.request_body_too_large.app_error',
          'Unable to process request. Request body too large.',
          413,
        );
      chunks.push(buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** json.NewDecoder(r.Body).Decode: a body that is not JSON is an invalid `name` parameter. */
  async json(name: string): Promise<unknown> {
    const text = await this.rawBody();
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw Object.assign(invalidBodyParam(name), { cause: err });
    }
  }

  private commonHeaders(): void {
    this.res.setHeader('X-Request-Id', this.requestId);
    this.res.setHeader('X-Version-Id', this.versionId);
    this.res.setHeader('X-Content-Type-Options', 'nosniff');
    this.res.setHeader('Referrer-Policy', 'no-referrer');
    if (this.method === 'GET') this.res.setHeader('Expires', '0');
  }

  /** API responses are `application/json` exactly (Client4 only parses that exact type). */
  sendJson(status: number, body: unknown): void {
    this.commonHeaders();
    this.res.setHeader('Content-Type', 'application/json');
    this.finish(status, JSON.stringify(body));
  }

  sendError(err: AppError): void {
    this.sendJson(err.statusCode, appErrorBody(err, this.requestId));
  }

  sendText(status: number, text: string, contentType = 'text/plain'): void {
    this.commonHeaders();
    this.res.setHeader('Content-Type', contentType);
    this.finish(status, text);
  }

  /** An answer that did not come from a handler (rate limiter, proxy): only the given headers. */
  sendRaw(status: number, headers: Record<string, string>, body: string): void {
    for (const [name, value] of Object.entries(headers)) this.res.setHeader(name, value);
    this.finish(status, body);
  }

  private finish(status: number, body: string): void {
    this.record(this.method, this.path, status);
    this.res.statusCode = status;
    this.res.setHeader('Content-Length', Buffer.byteLength(body));
    this.res.end(body);
  }
}

/** ParseAuthTokenFromRequest: `Authorization: Bearer …` or `Token …`, or `access_token` in the query. */
export function parseAuthToken(
  authorization: string | undefined,
  query: URLSearchParams,
): { token: string; location: 'header' | 'query' | 'none' } {
  const header = authorization ?? '';
  if (header.length > 6 && header.slice(0, 6).toUpperCase() === 'BEARER')
    return { token: header.slice(7), location: 'header' };
  if (header.length > 5 && header.slice(0, 5).toLowerCase() === 'token')
    return { token: header.slice(6), location: 'header' };
  const fromQuery = query.get('access_token');
  if (fromQuery) return { token: fromQuery, location: 'query' };
  return { token: '', location: 'none' };
}
