import { spawnSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { writeKeyPair } from '../../src/tokens/keygen.js';
import { buildOciImage } from '../helpers/oci-image.js';
import { basicAuth, decodeJwt, registryFetchWithToken, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { copy, describeResult } from '../helpers/skopeo.js';

const SERVICE = 'registry-keys';
const ISSUER = 'berth-keys';
// libtrust key ids: 12 groups of 4 base32 characters joined by ':'.
const LIBTRUST_KID = /^[A-Z2-7]{4}(?::[A-Z2-7]{4}){11}$/;

const admin = { username: 'admin', password: randomBytes(12).toString('base64url') };
let adminHash: string;
let root: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'berth-e2e-keys-'));
  adminHash = await hash(admin.password, 4);
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

function dir(label: string): string {
  const d = join(root, `${label}-${randomBytes(3).toString('hex')}`);
  mkdirSync(d, { recursive: true });
  return d;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed (${r.status}): ${r.stderr}`);
}

/** A self-signed certificate for an existing key, the way docker_auth's documentation makes one. */
function opensslSelfSign(d: string, keyFile: string): string {
  openssl(['req', '-new', '-key', keyFile, '-out', 'req.csr', '-subj', '/CN=berth'], d);
  openssl(['x509', '-req', '-in', 'req.csr', '-signkey', keyFile, '-out', 'cert.pem', '-days', '10'], d);
  return join(d, 'cert.pem');
}

/** `genpkey` writes PKCS#8; `genrsa -traditional` writes the PKCS#1 "RSA PRIVATE KEY" older setups have. */
function opensslRsa(label: string, tool: 'genpkey' | 'genrsa' = 'genpkey'): { keyPath: string; certPath: string } {
  const d = dir(label);
  if (tool === 'genpkey') openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'key.pem'], d);
  else openssl(['genrsa', '-traditional', '-out', 'key.pem', '2048'], d);
  return { keyPath: join(d, 'key.pem'), certPath: opensslSelfSign(d, 'key.pem') };
}

function opensslEc(label: string): { keyPath: string; certPath: string } {
  const d = dir(label);
  openssl(['ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', 'key.pem'], d);
  return { keyPath: join(d, 'key.pem'), certPath: opensslSelfSign(d, 'key.pem') };
}

interface Pair {
  berth: RunningServer;
  registry: RunningRegistry;
}

interface PairOptions {
  /** Berth's signing key and (optionally) the certificate it sends as x5c. */
  keyPath: string;
  certPath?: string;
  kid?: 'libtrust' | 'thumbprint';
  /** What the registry trusts; defaults to certPath. */
  rootCertBundlePath?: string;
  jwksPath?: string;
}

/** Starts Berth with the given key and a registry trusting the given bundle; always cleans up. */
async function withPair(opts: PairOptions, body: (p: Pair) => Promise<void>): Promise<void> {
  const work = dir('berth');
  const token: Record<string, unknown> = { issuer: ISSUER, expiration: 300, services: [SERVICE], key: opts.keyPath };
  if (opts.certPath) token.certificate = opts.certPath;
  if (opts.kid) token.kid = opts.kid;
  const config = await loadConfigText(
    yaml.dump({
      server: { addr: '127.0.0.1:0' },
      log: { level: 'warn' },
      token,
      users: { admin: { password: adminHash } },
      acl: [{ match: { account: 'admin' }, actions: ['*'] }],
    }),
    work,
  );
  const berth = await startServer(config, { port: 0 });
  let registry: RunningRegistry | undefined;
  try {
    const bundle = opts.rootCertBundlePath ?? opts.certPath;
    if (!bundle) throw new Error('test setup: the registry needs a root certificate bundle');
    registry = await startRegistry({ realm: `${berth.url}/auth`, service: SERVICE, issuer: ISSUER, rootCertBundlePath: bundle, ...(opts.jwksPath ? { jwksPath: opts.jwksPath } : {}) });
    try {
      await body({ berth, registry });
    } catch (e) {
      console.error(`--- registry log (last 20000 chars) ---\n${registry.log().slice(-20_000)}`);
      throw e;
    }
  } finally {
    await registry?.stop();
    await berth.close();
  }
}

async function pushAndPull(p: Pair, repo: string): Promise<void> {
  const img = buildOciImage();
  const out = dir('pulled');
  try {
    const push = await copy(`oci:${img.dir}`, `docker://${p.registry.host}/${repo}:v1`, admin);
    expect(push.code, describeResult(push)).toBe(0);
    const pull = await copy(`docker://${p.registry.host}/${repo}:v1`, `oci:${out}:v1`, admin);
    expect(pull.code, describeResult(pull)).toBe(0);
    const layer = readFileSync(join(out, 'blobs', 'sha256', img.layerDigest.slice(7)));
    expect(layer.equals(img.layerBytes)).toBe(true);
  } finally {
    rmSync(img.dir, { recursive: true, force: true });
  }
}

async function issueToken(p: Pair, scope = 'repository:keys/probe:pull'): Promise<{ header: Record<string, unknown>; payload: Record<string, unknown> }> {
  const res = await fetch(`${p.berth.url}/auth?${new URLSearchParams({ service: SERVICE, scope })}`, { headers: { Authorization: basicAuth(admin.username, admin.password) } });
  expect(res.status).toBe(200);
  return decodeJwt(((await res.json()) as { token: string }).token);
}

function certDerBase64(certPath: string): string[] {
  const pem = readFileSync(certPath, 'utf8');
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((b) => new X509Certificate(b).raw.toString('base64'));
}

function expectRegistryHeader(header: Record<string, unknown>, alg: string, certPath: string | null): void {
  expect(header.alg).toBe(alg);
  expect(header.typ).toBe('JWT');
  expect(header.kid).toMatch(LIBTRUST_KID);
  if (certPath) expect(header.x5c).toEqual(certDerBase64(certPath));
  else expect(header.x5c).toBeUndefined();
}

function expectRegistryPayload(payload: Record<string, unknown>): void {
  expect(payload.aud).toBe(SERVICE); // a JSON string: registry 2.8 refuses an array
  expect(payload.iss).toBe(ISSUER);
  expect(payload.sub).toBe('admin');
}

describe('signing keys the real registry accepts', { timeout: 60_000 }, () => {
  it('ES256 from berth keygen (writeKeyPair)', async () => {
    const { keyPath, certPath } = await writeKeyPair(dir('es256'), 'ES256');
    await withPair({ keyPath, certPath }, async (p) => {
      const { header, payload } = await issueToken(p);
      expectRegistryHeader(header, 'ES256', certPath);
      expectRegistryPayload(payload);
      await pushAndPull(p, 'keys/es256');
    });
  });

  it('RS256 from berth keygen (writeKeyPair)', async () => {
    const { keyPath, certPath } = await writeKeyPair(dir('rs256'), 'RS256');
    await withPair({ keyPath, certPath }, async (p) => {
      const { header, payload } = await issueToken(p);
      expectRegistryHeader(header, 'RS256', certPath);
      expectRegistryPayload(payload);
      await pushAndPull(p, 'keys/rs256');
    });
  });

  it.each([
    ['genpkey', /^-----BEGIN PRIVATE KEY-----/],
    ['genrsa', /^-----BEGIN RSA PRIVATE KEY-----/],
  ] as const)('RSA key from openssl %s and a certificate made as docker_auth documents', async (tool, pemHeader) => {
    const { keyPath, certPath } = opensslRsa(`openssl-${tool}`, tool);
    expect(readFileSync(keyPath, 'utf8')).toMatch(pemHeader);
    await withPair({ keyPath, certPath }, async (p) => {
      const { header, payload } = await issueToken(p);
      expectRegistryHeader(header, 'RS256', certPath);
      expectRegistryPayload(payload);
      await pushAndPull(p, `keys/openssl-${tool}`);
    });
  });

  it('EC key in SEC1 PEM from openssl ecparam', async () => {
    const { keyPath, certPath } = opensslEc('openssl-ec');
    expect(readFileSync(keyPath, 'utf8')).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
    await withPair({ keyPath, certPath }, async (p) => {
      const { header } = await issueToken(p);
      expectRegistryHeader(header, 'ES256', certPath);
      await pushAndPull(p, 'keys/openssl-ec');
    });
  });

  it.each([
    ['EC', 'ES256'],
    ['RSA', 'RS256'],
  ] as const)('an %s key without certificate: no x5c, and the registry finds the key by its libtrust kid', async (kind, alg) => {
    const { keyPath, certPath } = kind === 'EC' ? opensslEc('kid-only-ec') : opensslRsa('kid-only-rsa');
    await withPair({ keyPath, rootCertBundlePath: certPath }, async (p) => {
      const { header } = await issueToken(p);
      expectRegistryHeader(header, alg, null);
      await pushAndPull(p, `keys/kid-only-${kind.toLowerCase()}`);
    });
    // Control: with any other kid the registry has nothing to look up, so the lookup above was by kid.
    await withPair({ keyPath, rootCertBundlePath: certPath, kid: 'thumbprint' }, async (p) => {
      const dance = await registryFetchWithToken(p.registry.url, '/v2/_catalog', admin);
      expect(dance.tokenStatus).toBe(200);
      expect(dance.response.status).toBe(401);
      expect(p.registry.log()).toMatch(/untrusted key/);
    });
  });

  it('token.kid: thumbprint puts the RFC 7638 thumbprint in kid and publishes it in the JWKS', async () => {
    const { keyPath, certPath } = await writeKeyPair(dir('thumbprint'), 'ES256');
    const expectedKid = await calculateJwkThumbprint(await exportJWK(new X509Certificate(readFileSync(certPath)).publicKey), 'sha256');
    const jwksPath = join(dir('jwks'), 'jwks.json');
    await withPair({ keyPath, certPath, kid: 'thumbprint' }, async (p) => {
      const { header, payload } = await issueToken(p);
      expect(header.kid).toBe(expectedKid);
      expect(header.kid).not.toMatch(LIBTRUST_KID);
      expect(header.x5c).toEqual(certDerBase64(certPath));
      expectRegistryPayload(payload);

      const res = await fetch(`${p.berth.url}/.well-known/jwks.json`);
      expect(res.status).toBe(200);
      const jwks = (await res.json()) as { keys: { kid: string; alg: string; use: string; kty: string; d?: string }[] };
      const published = jwks.keys.find((k) => k.kid === expectedKid);
      expect(published).toMatchObject({ alg: 'ES256', use: 'sig', kty: 'EC' });
      expect(published!.d).toBeUndefined(); // never the private part
      writeFileSync(jwksPath, JSON.stringify(jwks));
    });
    // Registry 2.8 verifies through x5c; the JWKS file is what registry 3.x would be given.
    await withPair({ keyPath, certPath, kid: 'thumbprint', jwksPath }, async (p) => {
      await pushAndPull(p, 'keys/thumbprint');
    });
  });

  it('a registry trusting only another certificate refuses our tokens', async () => {
    const trusted = opensslRsa('trusted');
    const other = await writeKeyPair(dir('untrusted'), 'ES256');
    await withPair({ keyPath: other.keyPath, certPath: other.certPath, rootCertBundlePath: trusted.certPath }, async (p) => {
      const img = buildOciImage();
      try {
        const push = await copy(`oci:${img.dir}`, `docker://${p.registry.host}/keys/refused:v1`, admin);
        expect(push.code).not.toBe(0);
        expect(push.stderr).toMatch(/unauthorized|authentication required/i);
      } finally {
        rmSync(img.dir, { recursive: true, force: true });
      }
      // Berth grants the scope, the registry still refuses the signature.
      const dance = await registryFetchWithToken(p.registry.url, '/v2/_catalog', admin);
      expect(dance.tokenStatus).toBe(200);
      expect(decodeJwt(dance.token!).payload.access).toEqual([{ type: 'registry', name: 'catalog', actions: ['*'] }]);
      expect(dance.response.status).toBe(401);
      expect(p.registry.log()).toMatch(/unable to verify certificate chain/);
    });
    // Control: the same key is accepted once the registry trusts its certificate.
    await withPair({ keyPath: other.keyPath, certPath: other.certPath }, async (p) => {
      const dance = await registryFetchWithToken(p.registry.url, '/v2/_catalog', admin);
      expect(dance.response.status).toBe(200);
    });
  });
});
