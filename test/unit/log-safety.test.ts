import { randomBytes } from 'node:crypto';
import { hash } from '@node-rs/bcrypt';
import { describe, expect, it } from 'vitest';
import { loggableHeaders, loggableUsername, looksLikeSecret } from '../../src/log.js';
import { mintSecret } from '../../src/tokens/secret-format.js';

// What may go into a log line as a user name, and which request headers are logged at trace level.

const b62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const random = (alphabet: string, n: number) => Array.from(randomBytes(n), (b) => alphabet[b % alphabet.length]).join('');

describe('loggableUsername', () => {
  it('keeps ordinary user names, e-mail addresses, robot and CI account names as typed', () => {
    for (const name of ['alice', 'ops', 'oidc', 'carol', 'Kubernetes-Admin-2024', 'AdministratorAccount2024', 'firstname.lastname@example.com', 'John.Smith2@corp.example.com', 'robot:deploy-web', 'ci:octo-org/app-2024', 'deploy:octo-org/deployer', 'repo:octo-org/app:ref:refs/heads/main', 'static-Secret-4711', 'gh-deploy', 'Jürgen Groß']) {
      expect(loggableUsername(name), name).toBe(name);
    }
  });

  it("replaces Berth's own secrets, JWTs, password hashes and control characters with a placeholder", async () => {
    const jwt = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from('{"sub":"x","iat":1}').toString('base64url')}.${randomBytes(64).toString('base64url')}`;
    const cases = [
      mintSecret('berth_pat_'),
      mintSecret('berth_rbt_'),
      mintSecret('berth_rt_'),
      mintSecret('berth_dc_'),
      `robot:${mintSecret('berth_rbt_')}`,
      'berth_pat_short-but-still-a-pat',
      jwt,
      await hash('hunter2', 4),
      '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA',
      'alice\nlevel=info msg=forged',
      'bob\u202egnp.exe',
      'eve\u0000',
    ];
    for (const s of cases) {
      expect(looksLikeSecret(s), s).toBe(true);
      expect(loggableUsername(s)).toBe(`[looks like a secret, ${s.length} chars]`);
    }
  });

  it('recognises generated random strings: base62, base64, hex, password-manager output', () => {
    let caught = 0;
    const samples = 400;
    for (let i = 0; i < samples; i++) {
      const kinds = [random(b62, 20), randomBytes(24).toString('base64'), randomBytes(32).toString('base64url'), randomBytes(20).toString('hex'), random(`${b62}!@#%^&*`, 24), `ghp_${random(b62, 36)}`];
      for (const s of kinds) if (looksLikeSecret(s)) caught++;
    }
    // A heuristic: nearly all, measured well above 95 % (random text can happen to look like words).
    expect(caught / (samples * 6)).toBeGreaterThan(0.95);
    expect(looksLikeSecret('q8Zt3vN1xW7pL0cR4mYk')).toBe(true);
  });

  it('shortens over-long names and passes undefined through', () => {
    expect(loggableUsername('a'.repeat(500))).toBe(`${'a'.repeat(128)}…`);
    expect(loggableUsername(undefined)).toBeUndefined();
  });

  it('takes linear time on hostile input', () => {
    const started = performance.now();
    for (const s of ['a.'.repeat(200_000), `${'A'.repeat(10) + '.'}`.repeat(40_000), '$'.repeat(400_000), 'aA1'.repeat(130_000)]) looksLikeSecret(s);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('loggableHeaders', () => {
  it('logs only allow-listed headers: never Authorization, Proxy-Authorization, X-CSRF-Token, Cookie or unknown ones', () => {
    const out = loggableHeaders({
      'user-agent': 'docker/27.0',
      accept: 'application/json',
      'content-type': 'application/x-www-form-urlencoded',
      'x-forwarded-for': '203.0.113.7',
      authorization: 'Basic c2VjcmV0',
      'proxy-authorization': 'Basic cHJveHk=',
      'x-csrf-token': 'csrf',
      cookie: 'berth_session=x',
      'x-api-key': 'key',
      referer: 'https://berth.example/callback/corp?code=abc',
    });
    expect(out).toEqual({ 'user-agent': 'docker/27.0', accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': '203.0.113.7' });
  });
});
