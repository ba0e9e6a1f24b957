import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { TokenReuse } from '../../src/http/token/reuse.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { MemoryStore } from '../../src/store/memory.js';
import { basic, WebClient } from '../helpers/web-client.js';

// Issue 15 (a revocation during a verification must not be undone by the late answer) and issue 17
// item 2 (nothing remembered outlives token.reuseWindow from the moment it was verified).

/** A real memory store that can hold one read, after it has read, until the test lets it go. */
class HoldingStore extends MemoryStore {
  private trap: ((key: string) => boolean) | null = null;
  private release: () => void = () => {};
  holdNextRead(match: (key: string) => boolean): { held: Promise<void>; release: () => void } {
    let onHeld!: () => void;
    const held = new Promise<void>((r) => (onHeld = r));
    const gate = new Promise<void>((r) => (this.release = r));
    this.trap = (key) => {
      if (!match(key)) return false;
      onHeld();
      return true;
    };
    this.gate = gate;
    return { held, release: () => this.release() };
  }
  private gate: Promise<void> = Promise.resolve();
  override async get(key: string) {
    const value = await super.get(key);
    if (this.trap?.(key)) {
      this.trap = null;
      await this.gate;
    }
    return value;
  }
}

let dir: string;
const servers: RunningServer[] = [];

async function serve(store: MemoryStore, reuseWindow: number): Promise<{ server: RunningServer; pat: string; patId: string }> {
  const text = `
token: { issuer: staleness, services: [registry], generatedKeyDir: keys, reuseWindow: ${reuseWindow} }
users:
  ops: { password: "${await hash('ops-pw', 4)}" }
acl:
  - { match: { account: ops }, actions: [pull] }
`;
  const server = await startServer(await loadConfigText(text, dir), { store, port: 0, host: '127.0.0.1', log: createLogger('silent') });
  servers.push(server);
  const web = new WebClient(server.url);
  await web.signInLocal('ops', 'ops-pw');
  const pat = await web.createPat('staleness');
  const listed = (await (await fetch(`${server.url}/api/v1/tokens`, { headers: { authorization: `Bearer ${pat}` } })).json()) as { tokens: { id: string }[] };
  return { server, pat, patId: listed.tokens[0]!.id };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-staleness-'));
});

afterAll(async () => {
  for (const s of servers) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

const ask = (server: RunningServer, pat: string, repo: string) => fetch(`${server.url}/auth?service=registry&scope=repository:${repo}:pull`, { headers: { authorization: basic('ops', pat) } });
const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

describe('reuse cache writes are conditional on the generation they started from', () => {
  it('a key computed before a clear() stores nothing after it', () => {
    const reuse = new TokenReuse(10);
    const now = Math.floor(Date.now() / 1000);
    const answer = () => ({ header: 'h', rest: 't', issuedAt: now, issuedAtText: new Date(now * 1000).toISOString(), expiresAt: now + 300, reusableUntil: Infinity, account: 'a', kind: 'pat', decisions: [], outcome: 'granted' as const });
    const before = reuse.keyFor('q', 'auth', '1.2.3.4');
    reuse.clear();
    reuse.set(before, answer());
    expect(reuse.get(before, now)).toBeUndefined();
    expect(reuse.get(reuse.keyFor('q', 'auth', '1.2.3.4'), now)).toBeUndefined();
    const after = reuse.keyFor('q', 'auth', '1.2.3.4');
    reuse.set(after, answer());
    expect(reuse.get(after, now)?.rest).toBe('t');
  });

  it('a PAT revoked while its verification is in flight is refused on the next identical request', async () => {
    const store = new HoldingStore();
    const { server, pat, patId } = await serve(store, 10);
    // The token request reads the PAT record (still valid), then waits while the PAT is revoked.
    const { held, release } = store.holdNextRead((key) => key.startsWith('pat:'));
    const inFlight = ask(server, pat, 'race/app');
    await held;
    const revoked = await fetch(`${server.url}/api/v1/tokens/${patId}`, { method: 'DELETE', headers: { authorization: `Bearer ${pat}` } });
    expect(revoked.status).toBe(204);
    release();
    // Verified before the revocation: that one answer is granted...
    expect((await inFlight).status).toBe(200);
    // ...but it must not have been stored for reuse after the revocation cleared the cache.
    expect((await ask(server, pat, 'race/app')).status).toBe(401);
  });
});

describe('nothing remembered outlives token.reuseWindow from its verification', () => {
  it('an answer built on a remembered verification is reusable only for what is left of the window', async () => {
    const { server, pat } = await serve(new MemoryStore(), 2);
    // Start at the top of a second: the window counts in whole seconds (issued_at, exp).
    await sleepUntil(Math.ceil(Date.now() / 1000) * 1000 + 20);
    const t0 = Date.now();
    // t0: a real verification of the PAT (remembered for 2 s).
    expect((await ask(server, pat, 'window/one')).status).toBe(200);
    // t0+1.3 s: another scope, so a new answer, built on the remembered verification.
    await sleepUntil(t0 + 1300);
    const second = (await (await ask(server, pat, 'window/two')).json()) as { token: string };
    expect(Date.now() - t0, 'the second request must land inside the window (machine too slow?)').toBeLessThan(1900);
    // t0+2.3 s: the verification is more than a window old, so the repeat must not be served the
    // remembered answer (which its own issue time would keep until t0+3.3 s).
    await sleepUntil(t0 + 2300);
    const repeat = (await (await ask(server, pat, 'window/two')).json()) as { token: string };
    expect(repeat.token).not.toBe(second.token);
    // And within its window an identical repeat is still reused.
    const again = (await (await ask(server, pat, 'window/two')).json()) as { token: string };
    expect(again.token).toBe(repeat.token);
  });
});
