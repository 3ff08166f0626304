export type FaultStatus = 429 | 500 | 502 | 503;

export interface FaultSpec {
  status: FaultStatus;
  /** How many matching requests fail. Defaults to 1 when `forMs` is not given either. */
  times?: number;
  /** Fail every matching request for this long. */
  forMs?: number;
  method?: string;
  pathPrefix?: string;
  /** Retry-After and X-Ratelimit-Reset of an injected 429. Defaults to 1. */
  retryAfterSeconds?: number;
}

interface ActiveFault {
  spec: FaultSpec;
  remaining: number;
  until: number;
}

/** Injected failures for /api/v4 REST requests, consumed in the order they were injected. */
export class Faults {
  private faults: ActiveFault[] = [];

  constructor(private readonly now: () => number) {}

  inject(spec: FaultSpec): void {
    const remaining = spec.times ?? (spec.forMs === undefined ? 1 : Number.POSITIVE_INFINITY);
    const until = spec.forMs === undefined ? Number.POSITIVE_INFINITY : this.now() + spec.forMs;
    this.faults.push({ spec, remaining, until });
  }

  clear(): void {
    this.faults = [];
  }

  /** The fault this request trips, if any; a fault with `times` is used up as it fires. */
  take(method: string, path: string): FaultSpec | undefined {
    const now = this.now();
    this.faults = this.faults.filter((f) => f.remaining > 0 && f.until > now);
    const fault = this.faults.find(
      (f) =>
        (f.spec.method === undefined || f.spec.method.toUpperCase() === method.toUpperCase()) &&
        (f.spec.pathPrefix === undefined || path.startsWith(f.spec.pathPrefix)),
    );
    if (!fault) return undefined;
    fault.remaining--;
    return fault.spec;
  }
}
