import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { expect, it } from 'vitest';
import { tempDir } from '../helpers/fs.js';

const ROOT = new URL('../../', import.meta.url).pathname;

it('`npm test` with only DATABASE_URL set never connects to that database', async () => {
  // The operator's database, as far as the suite can tell: a server that counts connections.
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `postgres://operator:op-s3cret@127.0.0.1:${(server.address() as net.AddressInfo).port}/production`;
    const file = path.join(await tempDir(), 'database-url');
    await fs.writeFile(file, url);
    // The shell's environment, as a developer's might be, without this run's own settings.
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && !/^(VITEST|TEST_DATABASE_URL$|NODE_OPTIONS$|FORCE_COLOR$)/.test(k)) env[k] = v;
    }
    Object.assign(env, { DATABASE_URL: url, DATABASE_URL_FILE: file, NO_COLOR: '1' });
    const child = spawn('npm', ['test', '--', '--reporter=dot', 'test/setup/database-env.test.ts'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, output).toBe(0);
    expect(output).toMatch(/Tests +3 passed \(3\)/);
    expect(connections).toBe(0);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}, 180_000);
