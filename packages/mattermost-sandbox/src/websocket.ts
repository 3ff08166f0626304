import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { appError, type AppError } from './app-error.js';
import { broadcast, Connection, type Hub } from './hub.js';
import { isValidId, newId } from './ids.js';
import { parseAuthToken } from './rest/http.js';
import type { SandboxStore } from './store.js';

export interface WebSocketDeps {
  store: SandboxStore;
  hub: Hub;
  serverVersion: string;
  /** platform/web_conn.go authCheckInterval: an unauthenticated socket is closed after this. */
  authTimeoutMs: number;
  log?: Logger;
}

interface WebSocketRequest {
  seq: number;
  action: string;
  data: Record<string, unknown> | undefined;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** `/api/v4/websocket` (api4/websocket.go connectWebSocket, platform/websocket_router.go). */
export class WebSocketEndpoint {
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sockets = new Set<WebSocket>();
  private readonly connOf = new WeakMap<WebSocket, Connection>();

  constructor(private readonly deps: WebSocketDeps) {}

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://sandbox.invalid');
    if (url.pathname !== '/api/v4/websocket' && url.pathname !== '/api/v4/websocket/') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const { token, location } = parseAuthToken(req.headers.authorization, url.searchParams);
    const userId = token === '' ? undefined : this.deps.store.tokens.get(token);
    if (userId && location === 'query') {
      // A query-string token on a non-OAuth session is refused before the upgrade.
      const body = JSON.stringify({
        id: 'api.context.token_provided.app_error',
        message: 'Session is not OAuth but token was provided in the query string.',
        detailed_error: '',
        request_id: newId(),
        status_code: 401,
      });
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      return;
    }
    // An unknown token is not an error here (APIHandlerTrustRequester): the socket is simply unauthenticated.
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.open(ws, userId ? { userId, token } : undefined, url.searchParams);
    });
  }

  /** Close every socket abruptly (gorilla's Conn.Close: no close frame). */
  terminateAll(filter?: (conn: Connection | undefined) => boolean): void {
    for (const ws of [...this.sockets]) {
      const conn = this.connOf.get(ws);
      if (filter && !filter(conn)) continue;
      this.kill(ws);
    }
  }

  private kill(ws: WebSocket): void {
    const conn = this.connOf.get(ws);
    if (conn) this.deps.hub.detach(conn, ws);
    this.sockets.delete(ws);
    ws.terminate();
  }

  private open(
    ws: WebSocket,
    session: { userId: string; token: string } | undefined,
    query: URLSearchParams,
  ): void {
    this.sockets.add(ws);
    ws.on('error', (err) => this.deps.log?.debug({ err }, 'sandbox websocket error'));
    const { hub } = this.deps;
    let conn: Connection;
    let resumeAt: number | undefined;
    const requestedId = query.get('connection_id') ?? '';
    if (session && requestedId !== '') {
      // PopulateWebConnConfig: a connection id needs a valid sequence number, or the socket is closed.
      const seqText = query.get('sequence_number') ?? '';
      if (!isValidId(requestedId) || !/^-?\d+$/.test(seqText)) {
        this.kill(ws);
        return;
      }
      const found = hub.takeInactive(session.userId, requestedId);
      if (found) {
        conn = found;
        conn.reuseCount++;
        resumeAt = Number(seqText);
      } else {
        conn = new Connection(newId(), session.userId);
      }
    } else {
      conn = new Connection(newId(), session?.userId ?? '');
    }
    conn.token = session?.token ?? '';
    this.connOf.set(ws, conn);
    ws.on('close', () => {
      this.sockets.delete(ws);
      hub.detach(conn, ws);
    });
    ws.on('message', (raw, isBinary) => this.onFrame(ws, conn, raw, isBinary));
    if (session) {
      if (resumeAt === undefined) hub.register(conn, ws);
      else hub.resume(conn, ws, resumeAt);
      return;
    }
    const timer = setTimeout(() => {
      if (conn.token === '') this.kill(ws);
    }, this.deps.authTimeoutMs);
    timer.unref();
    ws.on('close', () => clearTimeout(timer));
  }

  private onFrame(ws: WebSocket, conn: Connection, raw: RawData, isBinary: boolean): void {
    if (isBinary) {
      // msgpack frames are not modelled; an unauthenticated binary frame closes the socket.
      if (conn.token === '') this.kill(ws);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(rawText(raw));
    } catch {
      this.kill(ws);
      return;
    }
    const request = toRequest(parsed);
    if (!request) {
      this.kill(ws);
      return;
    }
    if (request.action.startsWith('custom_')) return;
    this.route(ws, conn, request);
  }

  /** platform/websocket_router.go ServeWebSocket. */
  private route(ws: WebSocket, conn: Connection, r: WebSocketRequest): void {
    const { hub, store } = this.deps;
    if (r.action === '')
      return this.fail(conn, r, appError('api.web_socket_router.no_action.app_error', 400));
    if (r.seq <= 0) return this.fail(conn, r, appError('api.web_socket_router.bad_seq.app_error', 400));
    if (r.action === 'authentication_challenge') {
      if (conn.token !== '') return;
      const token = r.data?.token;
      const userId = typeof token === 'string' ? store.tokens.get(token) : undefined;
      if (typeof token !== 'string' || !userId) {
        this.kill(ws);
        return;
      }
      conn.token = token;
      conn.userId = userId;
      // HubRegister queues `hello` before the reply is sent.
      hub.register(conn, ws);
      hub.respond(conn, { status: 'OK', seq_reply: r.seq });
      return;
    }
    if (conn.token === '')
      return this.fail(conn, r, appError('api.web_socket_router.not_authenticated.app_error', 401));
    switch (r.action) {
      case 'ping':
        hub.respond(conn, {
          status: 'OK',
          seq_reply: r.seq,
          data: { node_id: '', server_time: store.now(), text: 'pong', version: this.deps.serverVersion },
        });
        return;
      case 'user_typing': {
        const channelId = typeof r.data?.channel_id === 'string' ? r.data.channel_id : '';
        const parentId = typeof r.data?.parent_id === 'string' ? r.data.parent_id : '';
        if (store.hasChannelPermission(conn.userId, channelId)) {
          hub.publish({
            event: 'typing',
            data: { parent_id: parentId, user_id: conn.userId },
            broadcast: broadcast({ channel_id: channelId, omit_users: { [conn.userId]: true } }),
          });
        }
        hub.respond(conn, { status: 'OK', seq_reply: r.seq });
        return;
      }
      default:
        this.fail(conn, r, appError('api.web_socket_router.bad_action.app_error', 500));
    }
  }

  /** returnWebSocketError: `{status: "FAIL", seq_reply, error}` — only reaches registered connections. */
  private fail(conn: Connection, r: WebSocketRequest, err: AppError): void {
    this.deps.hub.respond(conn, {
      status: 'FAIL',
      seq_reply: r.seq,
      error: { id: err.id, message: err.message, detailed_error: '', status_code: err.statusCode },
    });
  }
}

function rawText(raw: RawData): string {
  if (Array.isArray(raw)) return Buffer.concat(raw).toString('utf8');
  if (raw instanceof ArrayBuffer) return Buffer.from(raw).toString('utf8');
  return raw.toString('utf8');
}

/** json.Decode into model.WebSocketRequest: a wrongly typed field is a decode error. */
function toRequest(value: unknown): WebSocketRequest | undefined {
  if (!isRecord(value)) return undefined;
  const seq = value.seq ?? 0;
  const action = value.action ?? '';
  if (typeof seq !== 'number' || !Number.isInteger(seq) || typeof action !== 'string') return undefined;
  if (value.data !== undefined && value.data !== null && !isRecord(value.data)) return undefined;
  return { seq, action, data: isRecord(value.data) ? value.data : undefined };
}
