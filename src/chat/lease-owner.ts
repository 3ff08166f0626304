import { randomUUID } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import os from 'node:os';

/** Who holds an outbox lease, and whether another holder is certainly gone. */
export interface LeaseOwner {
  /** `<pid> <host> <pid namespace> <instance>`, written with every lease this process takes. */
  readonly id: string;
  /** True only when `other` cannot be alive: its lease may be taken over at once. */
  isGone(other: string): boolean;
}

/**
 * This process's PID namespace (Linux), so that PIDs are only compared where they mean the same
 * process: containers on host networking share a hostname but not their PIDs.
 */
export function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid').replace(/[^A-Za-z0-9:[\]]/g, '');
  } catch {
    return 'unknown';
  }
}

/** Holders created in this process (replicas in one process, as in tests): all alive. */
const thisProcess = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * This process as a lease holder. With an `exclusive` database (embedded PGlite: one process at
 * a time, enforced by the data directory lock) every other holder is a dead predecessor. With a
 * shared database another holder is known to be gone only when it ran on this host, in this
 * PID namespace, and its process is no longer there (or is our own PID, left by an earlier incarnation, as with PID 1
 * in a restarted container); holders on other hosts keep their lease until it runs out.
 */
export function leaseOwner(opts: { exclusive: boolean }): LeaseOwner {
  const host = os.hostname();
  const ns = pidNamespace();
  const id = `${process.pid} ${host} ${ns} ${randomUUID()}`;
  thisProcess.add(id);
  return {
    id,
    isGone(other) {
      if (thisProcess.has(other)) return false;
      if (opts.exclusive) return true;
      const [pidText, otherHost, otherNs] = other.split(' ');
      const pid = Number.parseInt(pidText ?? '', 10);
      if (otherHost !== host || otherNs !== ns || ns === 'unknown' || !(pid > 0)) return false;
      return pid === process.pid || !alive(pid);
    },
  };
}
