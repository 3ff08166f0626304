import type { WebSocket } from 'ws';
import { newId } from './ids.js';
import { sortKeysDeep } from './serialize.js';
import type { MmBroadcast, MmWebSocketEvent } from './types.js';

/** platform/web_conn.go: sendQueueSize. A dropped connection keeps at most this many undelivered events. */
const SEND_QUEUE_SIZE = 256;

/** An event before it is given a sequence number on one connection. */
export interface HubEvent {
  event: string;
  data: Record<string, unknown>;
  broadcast: MmBroadcast;
  /** Broadcast hooks (app/broadcast_hooks.go): extra data for one receiving user, e.g. `mentions`. */
  forUser?: (userId: string) => Record<string, unknown> | undefined;
}

type QueuedEvent = Omit<HubEvent, 'forUser'>;

export function broadcast(fields: Partial<MmBroadcast>): MmBroadcast {
  return {
    omit_users: fields.omit_users ?? null,
    user_id: fields.user_id ?? '',
    channel_id: fields.channel_id ?? '',
    team_id: fields.team_id ?? '',
    connection_id: fields.connection_id ?? '',
    omit_connection_id: fields.omit_connection_id ?? '',
    ...(fields.contains_sanitized_data ? { contains_sanitized_data: true } : {}),
    ...(fields.contains_sensitive_data ? { contains_sensitive_data: true } : {}),
  };
}

/** A WebSocket connection as the hub knows it (platform.WebConn): it outlives its socket. */
export class Connection {
  /** Next sequence number to send. */
  sequence = 0;
  /** The last `deadQueueSize` events written to the socket, with their sequence numbers. */
  deadQueue: MmWebSocketEvent[] = [];
  /** Events queued while no socket is attached (the WebConn's send channel). */
  pending: QueuedEvent[] = [];
  socket: WebSocket | null = null;
  reuseCount = 0;
  inactiveSince = 0;
  token = '';

  constructor(
    public id: string,
    public userId: string,
  ) {}

  get active(): boolean {
    return this.socket !== null;
  }
}

export interface HubDeps {
  deadQueueSize: number;
  /** platform/web_hub.go inactiveConnReaperInterval: an unattached connection is forgotten after this. */
  inactiveTtlMs: number;
  now: () => number;
  isMember: (channelId: string, userId: string) => boolean;
  isTeamMember: (teamId: string, userId: string) => boolean;
  isSystemAdmin: (userId: string) => boolean;
  helloData: (conn: Connection) => Record<string, unknown>;
}

/** The broadcast hub (platform/web_hub.go) plus the per-connection write pump (web_conn.go). */
export class Hub {
  private readonly conns = new Set<Connection>();

  constructor(private readonly deps: HubDeps) {}

  /** HubRegister: the connection becomes active; a fresh one (reuseCount 0) gets `hello`. */
  register(conn: Connection, socket: WebSocket): void {
    conn.socket = socket;
    this.conns.add(conn);
    if (conn.reuseCount === 0) this.deliver(conn, this.hello(conn));
  }

  /**
   * The start of writePump for a connection found again by connection_id: replay the dead queue
   * from the client's sequence number, or, when that number is gone, start over with a new
   * connection id and `hello`; then flush what was queued while the socket was away.
   */
  resume(conn: Connection, socket: WebSocket, clientSequence: number): void {
    conn.sequence = clientSequence;
    conn.socket = socket;
    this.conns.add(conn);
    if (clientSequence !== 0) {
      const index = conn.deadQueue.findIndex((e) => e.seq === clientSequence);
      if (index >= 0) {
        for (const event of conn.deadQueue.slice(index)) {
          conn.sequence++;
          this.sendFrame(conn, event);
        }
      } else if (this.hasMsgLoss(conn)) {
        conn.deadQueue = [];
        conn.id = newId();
        conn.sequence = 0;
        this.write(conn, this.hello(conn));
      }
    }
    const pending = conn.pending;
    conn.pending = [];
    for (const event of pending) this.write(conn, event);
  }

  /** The socket went away: keep the connection (and its queues) for a reconnect. */
  detach(conn: Connection, socket: WebSocket): void {
    if (conn.socket !== socket) return;
    conn.socket = null;
    conn.inactiveSince = this.deps.now();
  }

  /** CheckWebConn: take an inactive connection of this user back out of the hub. */
  takeInactive(userId: string, connectionId: string): Connection | undefined {
    this.reapInactive();
    for (const conn of this.conns) {
      if (conn.userId === userId && conn.id === connectionId && !conn.active) {
        this.conns.delete(conn);
        return conn;
      }
    }
    return undefined;
  }

  publish(event: HubEvent): void {
    this.reapInactive();
    for (const conn of this.conns) {
      if (!this.shouldSend(conn, event.broadcast)) continue;
      const extra = event.forUser?.(conn.userId);
      this.deliver(conn, {
        event: event.event,
        data: extra ? { ...event.data, ...extra } : event.data,
        broadcast: event.broadcast,
      });
    }
  }

  /** A reply to a client action: not an event, no sequence number, never queued. */
  respond(conn: Connection, reply: Record<string, unknown>): void {
    if (!this.conns.has(conn) || !conn.socket) return;
    conn.socket.send(JSON.stringify(reply));
  }

  connections(userId?: string): Connection[] {
    return [...this.conns].filter((c) => c.active && (userId === undefined || c.userId === userId));
  }

  /** Server restart: every connection id and queue is forgotten. */
  forgetAll(): void {
    this.conns.clear();
  }

  private hello(conn: Connection): QueuedEvent {
    return {
      event: 'hello',
      data: this.deps.helloData(conn),
      broadcast: broadcast({ user_id: conn.userId }),
    };
  }

  private deliver(conn: Connection, event: QueuedEvent): void {
    if (conn.active) {
      this.write(conn, event);
      return;
    }
    if (conn.pending.length >= SEND_QUEUE_SIZE) {
      // web_hub.go closeAndRemoveConn: the send channel is full, the connection is dropped.
      this.conns.delete(conn);
      return;
    }
    conn.pending.push(event);
  }

  private write(conn: Connection, event: QueuedEvent): void {
    const sent: MmWebSocketEvent = {
      event: event.event,
      data: sortKeysDeep(event.data) as Record<string, unknown>,
      broadcast: event.broadcast,
      seq: conn.sequence,
    };
    conn.sequence++;
    conn.deadQueue.push(sent);
    if (conn.deadQueue.length > this.deps.deadQueueSize) conn.deadQueue.shift();
    this.sendFrame(conn, sent);
  }

  private sendFrame(conn: Connection, event: MmWebSocketEvent): void {
    conn.socket?.send(JSON.stringify(event));
  }

  /** web_conn.go _hasMsgLoss: the wanted sequence does not follow the last event sent. */
  private hasMsgLoss(conn: Connection): boolean {
    const last = conn.deadQueue.at(-1);
    if (!last) return false;
    return last.seq !== conn.sequence - 1;
  }

  /** web_conn.go ShouldSendEvent. */
  private shouldSend(conn: Connection, b: MmBroadcast): boolean {
    if (conn.userId === '') return false;
    const admin = this.deps.isSystemAdmin(conn.userId);
    if (b.contains_sanitized_data && admin) return false;
    if (b.contains_sensitive_data && !admin) return false;
    if (b.connection_id !== '') return conn.id === b.connection_id;
    if (conn.id === b.omit_connection_id) return false;
    if (b.user_id !== '') return conn.userId === b.user_id;
    if (b.omit_users?.[conn.userId]) return false;
    if (b.channel_id !== '') return this.deps.isMember(b.channel_id, conn.userId);
    if (b.team_id !== '') return this.deps.isTeamMember(b.team_id, conn.userId);
    return true;
  }

  private reapInactive(): void {
    const cutoff = this.deps.now() - this.deps.inactiveTtlMs;
    for (const conn of this.conns) if (!conn.active && conn.inactiveSince < cutoff) this.conns.delete(conn);
  }
}
