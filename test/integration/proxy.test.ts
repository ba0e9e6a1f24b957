import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';

// Behind a load balancer only the address the nearest proxy appended may count: a client must not
// choose its own address (ACL ip rules, per-address lockouts) by writing X-Forwarded-For itself.

let dir: string;
let berth: RunningServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-proxy-'));
  const config = await loadConfigText(
    `
server: { trustProxy: true }
token: { issuer: proxy, services: [registry], generatedKeyDir: keys }
users: { "": {} }
acl:
  - { match: { ip: 10.0.0.0/8 }, actions: [pull], comment: office network }
`,
    dir,
  );
  berth = await startServer(config, { port: 0, host: '127.0.0.1', log: createLogger('silent') });
});

afterAll(async () => {
  await berth.close();
  rmSync(dir, { recursive: true, force: true });
});

async function granted(xff: string): Promise<string[]> {
  const res = await fetch(`${berth.url}/auth?service=registry&scope=repository:a/b:pull`, { headers: { 'x-forwarded-for': xff } });
  const { token } = (await res.json()) as { token: string };
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).access[0].actions;
}

describe('trustProxy', () => {
  it('uses the address appended by the nearest proxy', async () => {
    expect(await granted('192.0.2.5, 10.1.2.3')).toEqual(['pull']);
  });

  it('ignores addresses the client wrote itself', async () => {
    expect(await granted('10.1.2.3, 192.0.2.5')).toEqual([]);
  });

  it('keys repeated answers by that address too', async () => {
    // The second and third requests repeat the first byte for byte except for the header: the
    // answer decided for the office address must not be handed to another one, and back.
    expect(await granted('198.51.100.7, 10.9.9.9')).toEqual(['pull']);
    expect(await granted('10.9.9.9, 198.51.100.7')).toEqual([]);
    expect(await granted('198.51.100.8, 10.9.9.9')).toEqual(['pull']);
  });
});
