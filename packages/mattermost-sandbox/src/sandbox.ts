import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { SandboxApp } from './app.js';
import { handleControl } from './control.js';
import { saveCommand } from './commands.js';
import type { OpenedDialog } from './dialogs.js';
import { Faults, type FaultSpec } from './faults.js';
import { Hub } from './hub.js';
import { handleApi } from './rest/api.js';
import { Exchange } from './rest/http.js';
import { postJson, userJson } from './serialize.js';
import { SandboxStore } from './store.js';
import type { MmChannel, MmCommand, MmGroup, MmPost, MmReaction, MmTeam, MmUser } from './types.js';
import { WebSocketEndpoint } from './websocket.js';

/** The Mattermost version the sandbox claims to be (hello `server_version`, `X-Version-Id`). */
export const SANDBOX_SERVER_VERSION = '11.9.0';

export interface SandboxOptions {
  /** Defaults to 127.0.0.1: the sandbox has no authentication of its own. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Events each WebSocket connection keeps for a resume (web_conn.go deadQueueSize = 128). */
  deadQueueSize?: number;
  log?: Logger;
  /** Milliseconds since the epoch; defaults to Date.now. */
  now?: () => number;
  /** An unauthenticated socket is closed after this (web_conn.go authCheckInterval, 5 s). */
  authTimeoutMs?: number;
  /** A dropped connection can be resumed for this long (web_hub.go reaper, 5 min). */
  inactiveConnectionTtlMs?: number;
  /**
   * ServiceSettings.EnablePostUsernameOverride. A real server defaults to false (no
   * `override_username` prop on webhook posts); the sandbox defaults to true.
   */
  enablePostUsernameOverride?: boolean;
  /** ServiceSettings.EnablePostIconOverride (false on a real server and here). */
  enablePostIconOverride?: boolean;
  /**
   * A Professional licence with custom groups enabled (the default). `false` is a server without
   * a licence: every groups route answers 501 `api.license_error`, as api4 requireLicense does.
   */
  licensed?: boolean;
  /**
   * ServiceSettings.OutgoingIntegrationRequestsTimeout in milliseconds (30 s by default): how
   * long the server waits for an action, dialog or command integration, and how long a trigger id
   * may be used to open a dialog. Expiry is judged with `now`, so tests move the clock instead.
   */
  outgoingIntegrationRequestsTimeoutMs?: number;
}

/** What a custom slash command is made from (model.Command's writable fields). */
export interface CommandInput {
  creator_id: string;
  team_id: string;
  trigger: string;
  url: string;
  /** `P` (POST, form-encoded; the default) or `G` (GET). */
  method?: 'P' | 'G';
  token?: string;
  username?: string;
  icon_url?: string;
  display_name?: string;
  description?: string;
  auto_complete?: boolean;
}

export interface RequestFilter {
  method?: string;
  pathPrefix?: string;
  status?: number;
}

export interface Sandbox {
  /** `http://HOST:PORT`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  /** `id` (optional, not in the original brief) fixes the id, e.g. to match a policy file. */
  createTeam(i: { id?: string; name: string; display_name?: string }): MmTeam;
  /**
   * `token` is a personal-access-token style secret, accepted as `Authorization: Bearer`.
   * `owner_id` is a bot's owner (model.Bot.OwnerId).
   */
  createUser(i: { id?: string; username: string; is_bot?: boolean; roles?: string; owner_id?: string }): {
    user: MmUser;
    token: string;
  };
  createChannel(i: {
    id?: string;
    team_id: string;
    name: string;
    display_name?: string;
    type?: 'O' | 'P';
  }): MmChannel;
  /** Type `D`, team_id '', name `<smaller id>__<larger id>`; both users become members. */
  createDirectChannel(userA: string, userB: string): MmChannel;
  /** Also makes the user a member of the channel's team. Publishes `user_added` as App.AddUserToChannel does. */
  addChannelMember(channelId: string, userId: string): void;
  /** Publishes `user_removed` to the channel and to the removed person, as App.removeUserFromChannel does. */
  removeChannelMember(channelId: string, userId: string): void;
  /** Not in the original brief: team membership without a channel. */
  addTeamMember(teamId: string, userId: string): void;
  createGroup(i: { id?: string; name: string; display_name?: string }): MmGroup;
  /** Publishes `group_member_add` to each member alone (App.UpsertGroupMembers). */
  addGroupMembers(groupId: string, userIds: string[]): void;
  /** Publishes `group_member_delete` to the removed member alone (App.DeleteGroupMembers). */
  removeGroupMember(groupId: string, userId: string): void;
  createIncomingWebhook(i: { channel_id: string; user_id: string }): { id: string };
  /** Same code path, permission checks and events as POST /api/v4/posts; throws AppError. */
  createPost(
    userId: string,
    i: { channel_id: string; message: string; root_id?: string; props?: Record<string, unknown> },
  ): MmPost;
  /** Same as PUT /api/v4/posts/{id}/patch with `{message}`; throws AppError. */
  editPost(userId: string, postId: string, message: string): MmPost;
  /** Same as PUT /api/v4/posts/{id}/patch; `props` replace the post's props wholesale. */
  patchPost(
    userId: string,
    postId: string,
    patch: { message?: string; props?: Record<string, unknown>; is_pinned?: boolean },
  ): MmPost;
  /** Same as DELETE /api/v4/posts/{id}; throws AppError. */
  deletePost(userId: string, postId: string): void;
  /**
   * A custom slash command, as POST /api/v4/commands makes it but without the caller's
   * permission check (`creator_id` is recorded as given): trigger lower-cased and unique in the
   * team, `token` generated unless given, Command.IsValid applied; throws AppError.
   */
  createCommand(i: CommandInput): MmCommand;
  /** Dialogs the server told this user's clients to open (`open_dialog`), oldest first. */
  openedDialogs(userId: string): OpenedDialog[];
  /** Ephemeral posts sent to this user (`ephemeral_message`), oldest first; a real server keeps none. */
  ephemeralPostsFor(userId: string): MmPost[];
  /**
   * Deactivates (false) or reactivates an account; deactivating revokes its sessions. Publishes
   * `user_updated` as App.UpdateActive does.
   */
  setUserActive(userId: string, active: boolean): MmUser;
  getUser(id: string): MmUser | undefined;
  userByUsername(username: string): MmUser | undefined;
  /** Posts in create_at order; edit-history copies are never listed. */
  postsIn(channelId: string, opts?: { includeDeleted?: boolean }): MmPost[];
  /** Root then replies, create_at order, deleted posts left out. */
  thread(rootId: string): MmPost[];
  reactionsOn(postId: string): MmReaction[];
  /** REST requests answered (/api/v4 and /hooks), injected failures included. */
  requestCount(filter?: RequestFilter): number;
  /** Open WebSocket connections. */
  connectionCount(userId?: string): number;
  injectFault(f: FaultSpec): void;
  clearFaults(): void;
  /** Abrupt socket loss: the server keeps each connection's id and queues for a resume. */
  dropConnections(opts?: { userId?: string }): void;
  /** Like a server restart: sockets closed, connection ids and queues forgotten, data kept. */
  restart(): Promise<void>;
  /** Stop listening (ECONNREFUSED) and drop every socket; data and connection state are kept. */
  close(): Promise<void>;
  /** Listen again on the same port. */
  listen(): Promise<void>;
  /** A summary of users, teams and channels for the control API. */
  describe(): Record<string, unknown>;
}

class SandboxServer implements Sandbox {
  private readonly store: SandboxStore;
  private readonly hub: Hub;
  private readonly app: SandboxApp;
  private readonly faults: Faults;
  private readonly ws: WebSocketEndpoint;
  private readonly server: Server;
  private readonly requests: { method: string; path: string; status: number }[] = [];
  private readonly host: string;
  private boundPort: number;
  private listening = false;

  constructor(private readonly opts: SandboxOptions) {
    const now = opts.now ?? Date.now;
    this.host = opts.host ?? '127.0.0.1';
    this.boundPort = opts.port ?? 0;
    this.store = new SandboxStore(now);
    const versionId = `${SANDBOX_SERVER_VERSION}.sandbox.0.false`;
    this.hub = new Hub({
      deadQueueSize: opts.deadQueueSize ?? 128,
      inactiveTtlMs: opts.inactiveConnectionTtlMs ?? 5 * 60_000,
      now,
      isMember: (channelId, userId) => this.store.isMember(channelId, userId),
      isTeamMember: (teamId, userId) => this.store.isTeamMember(teamId, userId),
      isSystemAdmin: (userId) => this.store.isSystemAdmin(userId),
      helloData: (conn) => ({
        connection_id: conn.id,
        server_hostname: hostname(),
        server_version: versionId,
      }),
    });
    this.app = new SandboxApp(this.store, this.hub, {
      enablePostUsernameOverride: opts.enablePostUsernameOverride ?? true,
      enablePostIconOverride: opts.enablePostIconOverride ?? false,
      licensed: opts.licensed ?? true,
      outgoingTimeoutMs: opts.outgoingIntegrationRequestsTimeoutMs ?? 30_000,
      siteUrl: () => this.url,
    });
    this.faults = new Faults(now);
    this.ws = new WebSocketEndpoint({
      store: this.store,
      hub: this.hub,
      serverVersion: SANDBOX_SERVER_VERSION,
      authTimeoutMs: opts.authTimeoutMs ?? 5000,
      ...(opts.log ? { log: opts.log } : {}),
    });
    const record = (method: string, path: string, status: number): void => {
      if (!path.startsWith('/sandbox/')) this.requests.push({ method, path, status });
    };
    this.server = createServer((req, res) => {
      const ex = new Exchange(req, res, record, versionId);
      const done = ex.path.startsWith('/sandbox/v1/')
        ? handleControl(ex, this)
        : handleApi(ex, { app: this.app, faults: this.faults, ...(opts.log ? { log: opts.log } : {}) });
      done.catch((err: unknown) => {
        opts.log?.error({ err }, 'sandbox request failed');
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    this.server.on('upgrade', (req, socket, head) => this.ws.handleUpgrade(req, socket, head));
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    return `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.boundPort}`;
  }

  async listen(): Promise<void> {
    if (this.listening) return;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.boundPort, this.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const address = this.server.address();
    if (address && typeof address === 'object') this.boundPort = address.port;
    this.listening = true;
    this.opts.log?.info({ url: this.url }, 'sandbox listening');
  }

  async close(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    this.ws.terminateAll();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  async restart(): Promise<void> {
    this.ws.terminateAll();
    this.hub.forgetAll();
  }

  dropConnections(opts: { userId?: string } = {}): void {
    this.ws.terminateAll((conn) => opts.userId === undefined || conn?.userId === opts.userId);
  }

  injectFault(f: FaultSpec): void {
    this.faults.inject(f);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  requestCount(filter: RequestFilter = {}): number {
    return this.requests.filter(
      (r) =>
        (filter.method === undefined || r.method === filter.method.toUpperCase()) &&
        (filter.pathPrefix === undefined || r.path.startsWith(filter.pathPrefix)) &&
        (filter.status === undefined || r.status === filter.status),
    ).length;
  }

  connectionCount(userId?: string): number {
    return this.hub.connections(userId).length;
  }

  createTeam(i: { id?: string; name: string; display_name?: string }): MmTeam {
    return { ...this.store.createTeam(i) };
  }

  createUser(i: { id?: string; username: string; is_bot?: boolean; roles?: string; owner_id?: string }): {
    user: MmUser;
    token: string;
  } {
    const { user, token } = this.store.createUser(i);
    return { user: userJson(user, true), token };
  }

  createChannel(i: {
    id?: string;
    team_id: string;
    name: string;
    display_name?: string;
    type?: 'O' | 'P';
  }): MmChannel {
    return { ...this.store.createChannel(i) };
  }

  createDirectChannel(userA: string, userB: string): MmChannel {
    return { ...this.store.createDirectChannel(userA, userB) };
  }

  addChannelMember(channelId: string, userId: string): void {
    this.app.members.addChannelMember(channelId, userId);
  }

  removeChannelMember(channelId: string, userId: string): void {
    this.app.members.removeChannelMember(channelId, userId);
  }

  addTeamMember(teamId: string, userId: string): void {
    this.store.addTeamMember(teamId, userId);
  }

  createGroup(i: { id?: string; name: string; display_name?: string }): MmGroup {
    return { ...this.store.createGroup(i) };
  }

  addGroupMembers(groupId: string, userIds: string[]): void {
    this.app.members.addGroupMembers(groupId, userIds);
  }

  removeGroupMember(groupId: string, userId: string): void {
    this.app.members.removeGroupMember(groupId, userId);
  }

  createIncomingWebhook(i: { channel_id: string; user_id: string }): { id: string } {
    return { ...this.store.createIncomingWebhook(i) };
  }

  createPost(
    userId: string,
    i: { channel_id: string; message: string; root_id?: string; props?: Record<string, unknown> },
  ): MmPost {
    return this.app.createPostAsUser(userId, i).post;
  }

  editPost(userId: string, postId: string, message: string): MmPost {
    return this.app.patchPost(userId, postId, { message });
  }

  patchPost(
    userId: string,
    postId: string,
    patch: { message?: string; props?: Record<string, unknown>; is_pinned?: boolean },
  ): MmPost {
    return this.app.patchPost(userId, postId, patch);
  }

  deletePost(userId: string, postId: string): void {
    this.app.deletePost(userId, postId);
  }

  createCommand(i: CommandInput): MmCommand {
    const { creator_id: creatorId, ...body } = i;
    return saveCommand(this.app, creatorId, { method: 'P', ...body });
  }

  openedDialogs(userId: string): OpenedDialog[] {
    return structuredClone(this.app.openedDialogs.get(userId) ?? []);
  }

  ephemeralPostsFor(userId: string): MmPost[] {
    return structuredClone(this.app.ephemeralPosts.get(userId) ?? []);
  }

  /** Deactivates (or reactivates) an account, as `PUT /users/{id}/active` would. */
  setUserActive(userId: string, active: boolean): MmUser {
    return userJson(this.app.members.setUserActive(userId, active), true);
  }

  getUser(id: string): MmUser | undefined {
    const user = this.store.users.get(id);
    return user ? userJson(user, true) : undefined;
  }

  userByUsername(username: string): MmUser | undefined {
    const user = this.store.userByUsername(username);
    return user ? userJson(user, true) : undefined;
  }

  postsIn(channelId: string, opts: { includeDeleted?: boolean } = {}): MmPost[] {
    return (this.store.channelPosts.get(channelId) ?? [])
      .filter((p) => p.originalId === '' && (opts.includeDeleted || p.deleteAt === 0))
      .map((post, index) => ({ post, index }))
      .sort((a, b) => a.post.createAt - b.post.createAt || a.index - b.index)
      .map((e) => postJson(this.store, e.post, { metadata: true }));
  }

  thread(rootId: string): MmPost[] {
    const root = this.store.posts.get(rootId);
    if (!root) return [];
    return this.postsIn(root.channelId).filter((p) => p.id === rootId || p.root_id === rootId);
  }

  reactionsOn(postId: string): MmReaction[] {
    return (this.store.reactions.get(postId) ?? []).filter((r) => r.delete_at === 0).map((r) => ({ ...r }));
  }

  describe(): Record<string, unknown> {
    return {
      url: this.url,
      users: [...this.store.users.values()].map((u) => ({
        id: u.id,
        username: u.username,
        is_bot: u.isBot,
        roles: u.roles,
      })),
      teams: [...this.store.teams.values()].map((t) => ({ id: t.id, name: t.name })),
      channels: [...this.store.channels.values()].map((c) => ({
        id: c.id,
        name: c.name,
        type: c.type,
        team_id: c.team_id,
        members: this.store.channelMemberIds(c.id),
      })),
      connections: this.hub
        .connections()
        .map((c) => ({ user_id: c.userId, connection_id: c.id, sequence: c.sequence })),
    };
  }
}

/** Start a Mattermost-compatible sandbox server (REST v4 subset, WebSocket, webhooks, control API). */
export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const sandbox = new SandboxServer(opts);
  await sandbox.listen();
  return sandbox;
}
