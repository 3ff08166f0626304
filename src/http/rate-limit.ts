import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';

/** Budgets of the `/v1` routes, each counted over a fixed window of `windowMs`. */
export interface RateLimits {
  /** Requests per authenticated caller (an agent, or the ADMIN_TOKEN holder) on each route. */
  perCaller: number;
  /** Failed or missing authentications per client address, all routes together. */
  failedAuth: number;
  /** Requests per client address on each route that needs no authentication (bundles, policies). */
  perAddress: number;
  windowMs: number;
}

export const DEFAULT_RATE_LIMITS: RateLimits = {
  perCaller: 600,
  failedAuth: 30,
  perAddress: 300,
  windowMs: 60_000,
};

/** Past this many keys the least recently used are forgotten, so memory stays bounded. */
const MAX_KEYS = 20_000;

/** Fixed-window counters kept in memory (per process: each replica counts its own). */
export class WindowCounter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one request for `key`: the seconds to wait when that is over budget, else 0. */
  hit(key: string): number {
    const now = this.now();
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) w = { start: now, count: 0 };
    w.count += 1;
    // Re-inserted, so the Map's order is least recently used first.
    this.windows.delete(key);
    this.windows.set(key, w);
    if (this.windows.size > MAX_KEYS) this.windows.delete(this.windows.keys().next().value!);
    return w.count > this.max ? Math.max(1, Math.ceil((w.start + this.windowMs - now) / 1000)) : 0;
  }

  /** Takes back one counted request (it turned out not to belong to this budget). */
  refund(key: string): void {
    const w = this.windows.get(key);
    if (w && w.count > 0) w.count -= 1;
  }
}

/**
 * The address a budget is kept for: IPv4 as is, IPv6 by its /64 (one host usually holds a
 * whole /64, so counting single addresses would give it endless fresh budgets).
 */
export function addressKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!ip.includes(':')) return ip;
  const [head = '', tail] = ip.split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  // A trailing dotted IPv4 part fills two groups.
  const width = (gs: string[]) => gs.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(Math.max(0, 8 - width(left) - width(right))).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`;
}

function refuse(reply: FastifyReply, seconds: number): void {
  if (seconds === 0) return;
  reply.header('retry-after', String(seconds));
  throw new AppError('ERR_RATE_LIMITED', `too many requests: retry in ${seconds} s`);
}

const route = (req: FastifyRequest) => `${req.method} ${req.routeOptions.url ?? req.url}`;

/**
 * The budgets of one app. An authenticated caller is counted by who it is, not by what it
 * sends, so a rotated bogus header buys nothing: every request without a valid credential
 * is charged to its address's failure budget before the credential is even looked up.
 */
export class ApiRateLimiter {
  private readonly failures: WindowCounter;
  private readonly callers: WindowCounter;
  private readonly addresses: WindowCounter;

  constructor(limits: RateLimits, now?: () => number) {
    this.failures = new WindowCounter(limits.failedAuth, limits.windowMs, now);
    this.callers = new WindowCounter(limits.perCaller, limits.windowMs, now);
    this.addresses = new WindowCounter(limits.perAddress, limits.windowMs, now);
  }

  /** `onRequest` hook of the routes anyone may call. */
  readonly byAddress = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    refuse(reply, this.addresses.hit(`${route(req)} ${addressKey(req.ip)}`));
  };

  /**
   * Charges an authentication attempt to its address before it is checked (so concurrent
   * attempts cannot all slip under the budget); `authenticated` takes the charge back.
   */
  attempt(req: FastifyRequest, reply: FastifyReply): void {
    refuse(reply, this.failures.hit(addressKey(req.ip)));
  }

  /** The attempt succeeded as `caller`: its charge is returned and the caller's own budget counts. */
  authenticated(req: FastifyRequest, reply: FastifyReply, caller: string): void {
    this.failures.refund(addressKey(req.ip));
    refuse(reply, this.callers.hit(`${route(req)} ${caller}`));
  }
}
