import type { Logger } from 'pino';
import WebSocket from 'ws';
import { backoffMs } from '../ports/chat-error.js';
import type { ChatStreamListener } from '../ports/chat.js';

/** One server event, as Mattermost sends it (`data` values are often JSON strings). */
export interface SocketEvent {
  event: string;
  data: Record<string, unknown>;
  broadcast: Record<string, unknown>;
  seq: number;
}

export interface SocketHandlers {
  onEvent(event: SocketEvent): void;
  /**
   * Authenticated. `fresh` means a new server-side connection (first connect, server restart,
   * another node, or a resume the server refused): events may have been missed, catch up over REST.
   */
  onConnected(info: { connectionId: string; fresh: boolean }): void;
  onDisconnected(reason: string): void;
}

export interface SocketOptions {
  /** Mattermost base URL (http or https). */
  url: string;
  token: string;
  log: Logger;
  handlers: SocketHandlers;
  /**
   * Hears every event before the handlers do, and every connect and break (the chat cache:
   * answers it keeps are only reused while nothing was missed).
   */
  listener?: ChatStreamListener | undefined;
  pingIntervalMs?: number;
  /** Silence longer than this (no event, no pong) means the connection is dead. */
  deadAfterMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Mattermost's event stream (`/api/v4/websocket`): authentication, `hello` with the connection
 * id, strict `seq` checking, app-level pings, and reconnects with `connection_id` +
 * `sequence_number` so the server replays what it still holds. A sequence gap or a resume the
 * server refused is reported as a fresh connection: the bot then catches up over REST.
 *
 * The token goes in the upgrade's `Authorization` header: the server looks up the connection
 * to resume by the session's user *during the upgrade* (api4/websocket.go connectWebSocket,
 * PopulateWebConnConfig), so a socket that only answers `authentication_challenge` afterwards
 * is always a new connection and nothing is ever replayed. The challenge is still sent (the
 * server ignores it on a socket the header authenticated; it authenticates one whose header a
 * proxy dropped), followed by a ping: an OK answer without a `hello` before it means resumed.
 */
export class MattermostSocket {
  private ws: WebSocket | null = null;
  private connectionId = '';
  /** The seq the next event must carry. */
  private nextSeq = 0;
  private actionSeq = 1;
  private authSeq = 0;
  /** The ping sent right after opening: its OK answer proves the socket is authenticated. */
  private probeSeq = 0;
  private authenticated = false;
  private attempt = 0;
  private stopped = true;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private lastHeard = 0;

  constructor(private readonly opts: SocketOptions) {}

  get connected(): boolean {
    return this.authenticated && this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.open();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.opts.listener?.streamDisconnected();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.terminate();
      });
    }
  }

  private endpoint(): string {
    const base = new URL(this.opts.url.replace(/\/+$/, '') + '/api/v4/websocket');
    base.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
    if (this.connectionId) {
      base.searchParams.set('connection_id', this.connectionId);
      base.searchParams.set('sequence_number', String(this.nextSeq));
    }
    return base.toString();
  }

  private open(): void {
    if (this.stopped) return;
    this.authenticated = false;
    const resuming = this.connectionId !== '';
    const ws = new WebSocket(this.endpoint(), {
      handshakeTimeout: 10_000,
      maxPayload: 16 * 1024 * 1024,
      headers: { Authorization: `Bearer ${this.opts.token}` },
    });
    this.ws = ws;
    ws.on('open', () => {
      this.lastHeard = Date.now();
      this.authSeq = this.actionSeq++;
      ws.send(
        JSON.stringify({
          seq: this.authSeq,
          action: 'authentication_challenge',
          data: { token: this.opts.token },
        }),
      );
      this.probeSeq = this.actionSeq++;
      ws.send(JSON.stringify({ action: 'ping', seq: this.probeSeq }));
      this.startPings(ws);
    });
    ws.on('message', (raw) => {
      this.lastHeard = Date.now();
      let msg: unknown;
      try {
        msg = JSON.parse(raw.toString());
      } catch {
        this.opts.log.warn('ignoring a WebSocket frame that is not JSON');
        return;
      }
      this.receive(ws, msg, resuming);
    });
    ws.on('error', (err) => {
      this.opts.log.warn({ err: err.message }, 'Mattermost WebSocket error');
    });
    ws.on('close', (code, reason) => {
      if (this.pingTimer) clearInterval(this.pingTimer);
      const wasAuthenticated = this.authenticated;
      this.authenticated = false;
      if (this.ws === ws) this.ws = null;
      this.opts.listener?.streamDisconnected();
      if (this.stopped) return;
      const why = `closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`;
      this.opts.handlers.onDisconnected(wasAuthenticated ? why : `${why} before authentication`);
      this.scheduleReconnect();
    });
  }

  private receive(ws: WebSocket, msg: unknown, resuming: boolean): void {
    if (typeof msg !== 'object' || msg === null) return;
    const m = msg as Record<string, unknown>;
    if (typeof m.seq_reply === 'number') {
      const answersUs = m.seq_reply === this.authSeq || m.seq_reply === this.probeSeq;
      if (answersUs && m.status === 'OK' && !this.authenticated) {
        // Authenticated, and no hello came first: the server found our connection and has
        // replayed what we missed (a new connection always starts with hello).
        this.authenticated = true;
        this.attempt = 0;
        this.opts.listener?.streamConnected();
        this.opts.handlers.onConnected({ connectionId: this.connectionId, fresh: !resuming });
      }
      return;
    }
    if (typeof m.event !== 'string' || typeof m.seq !== 'number') return;
    const event: SocketEvent = {
      event: m.event,
      data: typeof m.data === 'object' && m.data !== null ? (m.data as Record<string, unknown>) : {},
      broadcast:
        typeof m.broadcast === 'object' && m.broadcast !== null
          ? (m.broadcast as Record<string, unknown>)
          : {},
      seq: m.seq,
    };
    if (event.event === 'hello') {
      // A hello always means a new server-side connection: a resumed one replays without it.
      this.connectionId = typeof event.data.connection_id === 'string' ? event.data.connection_id : '';
      this.nextSeq = event.seq + 1;
      this.authenticated = true;
      this.attempt = 0;
      this.opts.listener?.streamConnected();
      this.opts.handlers.onConnected({ connectionId: this.connectionId, fresh: true });
      return;
    }
    if (event.seq !== this.nextSeq) {
      this.opts.log.warn({ expected: this.nextSeq, got: event.seq }, 'WebSocket sequence gap');
      this.opts.listener?.streamDisconnected();
      // Start over on a new connection; onConnected(fresh) then triggers the REST catch-up.
      this.connectionId = '';
      ws.terminate();
      return;
    }
    this.nextSeq = event.seq + 1;
    this.opts.listener?.streamEvent(event);
    this.opts.handlers.onEvent(event);
  }

  private startPings(ws: WebSocket): void {
    const every = this.opts.pingIntervalMs ?? 30_000;
    const deadAfter = this.opts.deadAfterMs ?? every * 2;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > deadAfter) {
        this.opts.log.warn(
          { silentMs: Date.now() - this.lastHeard },
          'Mattermost WebSocket is silent; reconnecting',
        );
        ws.terminate();
        return;
      }
      if (ws.readyState === WebSocket.OPEN)
        ws.send(JSON.stringify({ action: 'ping', seq: this.actionSeq++ }));
    }, every);
    this.pingTimer.unref();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const wait = backoffMs(this.attempt++, this.opts.minBackoffMs ?? 500, this.opts.maxBackoffMs ?? 30_000);
    this.opts.log.info(
      { waitMs: wait, resume: this.connectionId !== '' },
      'reconnecting to Mattermost WebSocket',
    );
    this.reconnectTimer = setTimeout(() => this.open(), wait);
    this.reconnectTimer.unref();
  }
}
