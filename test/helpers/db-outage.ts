import net from 'node:net';
import type { KyselyPlugin } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { createTestDb, type TestDb } from './db.js';

/**
 * A database that can be taken away and given back, as the server under test sees it.
 * PostgreSQL: a TCP proxy in front of the real server; `down()` cuts every connection (queries
 * in flight fail, checked-out clients emit `error`) and refuses new ones. PGlite (in process,
 * no socket): every query fails with SQLSTATE 58030 (io_error) while down.
 */
export interface OutageDb {
  d: TestDb;
  down(): void;
  up(): void;
  close(): Promise<void>;
}

export async function outageDb(): Promise<OutageDb> {
  const direct = await createTestDb();
  if (direct.url === null) {
    let isDown = false;
    const plugin: KyselyPlugin = {
      transformQuery(args) {
        if (isDown)
          throw Object.assign(new Error('could not read block: Input/output error'), { code: '58030' });
        return args.node;
      },
      transformResult: (args) => Promise.resolve(args.result),
    };
    return {
      d: { ...direct, db: direct.db.withPlugin(plugin), close: () => direct.close() },
      down: () => {
        isDown = true;
      },
      up: () => {
        isDown = false;
      },
      close: () => direct.close(),
    };
  }
  const target = new URL(direct.url);
  const sockets = new Set<net.Socket>();
  let isDown = false;
  const proxy = net.createServer((client) => {
    if (isDown) {
      client.destroy();
      return;
    }
    const server = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, server]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(server).pipe(client);
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const port = (proxy.address() as net.AddressInfo).port;
  const proxied = new URL(direct.url);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(port);
  const handle = await openDatabase({ kind: 'postgres', url: proxied.toString() });
  const close = async () => {
    await handle.close().catch(() => {});
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
    await direct.close();
  };
  return {
    d: { ...handle, url: proxied.toString(), close },
    down: () => {
      isDown = true;
      for (const s of sockets) s.destroy();
    },
    up: () => {
      isDown = false;
    },
    close,
  };
}
