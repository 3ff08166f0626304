/**
 * Runs tasks one at a time per key (a Mattermost thread: order matters within it) and at
 * most `limit` keys at once (threads are independent).
 */
export class KeyedQueue {
  private readonly chains = new Map<string, Promise<void>>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Queues `task`; it must not reject (the caller handles its own failures). */
  push(key: string, task: () => Promise<void>): Promise<void> {
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous.then(() => this.inSlot(task));
    this.chains.set(key, next);
    void next.finally(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
    return next;
  }

  /** Resolves when everything queued so far has run. */
  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  get size(): number {
    return this.chains.size;
  }

  private async inSlot(task: () => Promise<void>): Promise<void> {
    while (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
