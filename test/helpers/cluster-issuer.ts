import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync, renameSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet, type JWK } from 'jose';

/**
 * A Kubernetes cluster's service-account token issuer on loopback: the discovery document at
 * /.well-known/openid-configuration and the key set at /openid/v1/jwks, as the API server serves
 * them, and projected service-account tokens with the real claim layout (the nested
 * `kubernetes.io` claim naming namespace, service account, pod and node). The key set can also be
 * written to a file, for the JWKS-file variant (a cluster whose issuer is not reachable).
 */

export interface PodIdentity {
  namespace: string;
  serviceAccount?: string;
  pod?: string;
}

export interface MintOptions {
  /** Seconds relative to now. */
  iatOffset?: number;
  /** Seconds; kubelet asks for at least 10 minutes. */
  lifetime?: number;
  /** Replaces or adds claims; `undefined` removes one. */
  claims?: Record<string, unknown>;
}

export interface ClusterIssuer {
  /** The `iss` value, http://127.0.0.1:PORT (a real cluster: https://kubernetes.default.svc…). */
  issuer: string;
  requests: { discovery: number; jwks: number };
  /** What `kubectl get --raw /openid/v1/jwks` prints. */
  jwks(): JSONWebKeySet;
  /** Writes the key set to a file atomically (rename), as a sync job would. */
  writeJwks(path: string): void;
  claims(who: PodIdentity, audience: string | string[], opts?: MintOptions): Record<string, unknown>;
  /** A projected service-account token for a pod, as kubelet would hand it to the plugin. */
  mint(who: PodIdentity, audience: string | string[], opts?: MintOptions): Promise<string>;
  /** A new signing key; the old one stays published unless dropOld. */
  rotate(opts?: { dropOld?: boolean }): Promise<void>;
  close(): Promise<void>;
}

interface Key {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function newKey(): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  // The API server's kid is a hash of the public key; any unique value does for the test.
  const kid = randomBytes(20).toString('base64url');
  return { kid, privateKey, publicJwk: { use: 'sig', kty: 'RSA', kid, alg: 'RS256', ...(await exportJWK(publicKey)) } };
}

export async function startClusterIssuer(): Promise<ClusterIssuer> {
  let current = await newKey();
  let published: Key[] = [current];
  const requests = { discovery: 0, jwks: 0 };
  let issuer = '';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && path === '/.well-known/openid-configuration') {
      requests.discovery++;
      return send(200, {
        issuer,
        jwks_uri: `${issuer}/openid/v1/jwks`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    if (req.method === 'GET' && path === '/openid/v1/jwks') {
      requests.jwks++;
      return send(200, { keys: published.map((k) => k.publicJwk) });
    }
    send(404, { kind: 'Status', status: 'Failure', code: 404 });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const claims = (who: PodIdentity, audience: string | string[], opts: MintOptions = {}) => {
    const now = Math.floor(Date.now() / 1000) + (opts.iatOffset ?? 0);
    const sa = who.serviceAccount ?? 'default';
    const c: Record<string, unknown> = {
      aud: Array.isArray(audience) ? audience : [audience],
      exp: now + (opts.lifetime ?? 3600),
      iat: now,
      iss: issuer,
      jti: randomUUID(),
      'kubernetes.io': {
        namespace: who.namespace,
        node: { name: 'node-1', uid: randomUUID() },
        pod: { name: who.pod ?? `${sa}-7d9f8c6b5-x2x4q`, uid: randomUUID() },
        serviceaccount: { name: sa, uid: randomUUID() },
      },
      nbf: now,
      sub: `system:serviceaccount:${who.namespace}:${sa}`,
    };
    for (const [k, v] of Object.entries(opts.claims ?? {})) {
      if (v === undefined) delete c[k];
      else c[k] = v;
    }
    return c;
  };
  const jwks = (): JSONWebKeySet => ({ keys: published.map((k) => ({ ...k.publicJwk })) as JSONWebKeySet['keys'] });

  return {
    issuer,
    requests,
    jwks,
    writeJwks(path) {
      writeFileSync(`${path}.tmp`, JSON.stringify(jwks()));
      renameSync(`${path}.tmp`, path);
    },
    claims,
    mint: (who, audience, opts) => new SignJWT(claims(who, audience, opts)).setProtectedHeader({ alg: 'RS256', kid: current.kid }).sign(current.privateKey),
    async rotate(opts = {}) {
      current = await newKey();
      published = opts.dropOld ? [current] : [...published, current];
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
