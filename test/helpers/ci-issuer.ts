import { createHmac, createPublicKey, randomBytes, randomUUID, type JsonWebKey } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';

/**
 * A CI platform's OIDC issuer on loopback, shaped like GitHub Actions' token service: discovery at
 * /.well-known/openid-configuration, the key set at its jwks_uri, and ID tokens with the claims a
 * workflow job gets. It also makes the bad tokens an attacker would try.
 */

export type CiClaims = Record<string, unknown>;

interface SigningKeyPair {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicPem: string;
}

export interface JobOptions {
  repository?: string;
  ref?: string;
  environment?: string;
  /** Replaces or adds claims; `undefined` removes one. */
  claims?: CiClaims;
  /** Seconds relative to now. */
  iatOffset?: number;
  lifetime?: number;
}

export interface CiIssuer {
  /** The `iss` value and base URL, http://127.0.0.1:PORT. */
  issuer: string;
  /** Requests served so far, by path. */
  requests: { discovery: number; jwks: number };
  /** The kid of the key that signs new tokens. */
  currentKid(): string;
  /** GitHub Actions' claim set for a job (defaults: octo-org/app, refs/heads/main, push). */
  jobClaims(opts?: JobOptions): CiClaims;
  /** An ID token for a job, signed with the current key. */
  mint(audience: string, opts?: JobOptions): Promise<string>;
  /** Signs arbitrary claims with the current key. */
  sign(claims: CiClaims): Promise<string>;
  /** A fresh key (published alongside the old one unless dropOld) becomes the signing key. */
  rotate(opts?: { dropOld?: boolean }): Promise<string>;
  /** Signed with the current key, with no kid in the header. */
  signWithoutKid(claims: CiClaims): Promise<string>;
  /** Publishes an extra ES256 key (never used to sign), so the key set holds keys of two types. */
  publishExtraKey(): Promise<void>;
  /** Signed with a key the key set has never contained, under a kid it does not list. */
  signWithUnknownKey(claims: CiClaims): Promise<string>;
  /** `alg: none`, no signature. */
  unsigned(claims: CiClaims): string;
  /** HS256 with the issuer's public key (PEM) as the HMAC secret: the classic key-confusion forgery. */
  hmacWithPublicKey(claims: CiClaims): string;
  close(): Promise<void>;
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** A token with its claims changed but its header and signature kept. */
export function tamper(token: string, changes: CiClaims): string {
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p!, 'base64url').toString('utf8')) as CiClaims;
  return `${h}.${b64({ ...claims, ...changes })}.${s}`;
}

async function newKey(): Promise<SigningKeyPair> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomBytes(8).toString('hex');
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const publicPem = createPublicKey({ key: publicJwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
  return { kid, privateKey, publicJwk, publicPem };
}

export async function startCiIssuer(): Promise<CiIssuer> {
  let current = await newKey();
  let published: SigningKeyPair[] = [current];
  const requests = { discovery: 0, jwks: 0 };
  let issuer = '';

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && path === '/.well-known/openid-configuration') {
      requests.discovery++;
      return send(200, {
        issuer,
        jwks_uri: `${issuer}/.well-known/jwks`,
        subject_types_supported: ['public', 'pairwise'],
        response_types_supported: ['id_token'],
        claims_supported: ['sub', 'aud', 'exp', 'iat', 'iss', 'jti', 'nbf', 'ref', 'sha', 'repository', 'repository_id', 'repository_owner', 'repository_owner_id', 'run_id', 'run_number', 'run_attempt', 'actor', 'actor_id', 'workflow', 'workflow_ref', 'workflow_sha', 'head_ref', 'base_ref', 'event_name', 'ref_type', 'ref_protected', 'environment', 'job_workflow_ref', 'job_workflow_sha', 'repository_visibility', 'runner_environment'],
        id_token_signing_alg_values_supported: ['RS256'],
        scopes_supported: ['openid'],
      });
    }
    if (req.method === 'GET' && path === '/.well-known/jwks') {
      requests.jwks++;
      return send(200, { keys: published.map((k) => k.publicJwk) });
    }
    send(404, { error: 'not found' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const signWith = (key: SigningKeyPair, claims: CiClaims) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: key.kid }).sign(key.privateKey);

  const jobClaims = (opts: JobOptions = {}): CiClaims => {
    const repository = opts.repository ?? 'octo-org/app';
    const [owner] = repository.split('/');
    const ref = opts.ref ?? 'refs/heads/main';
    const now = Math.floor(Date.now() / 1000) + (opts.iatOffset ?? 0);
    const workflowPath = '.github/workflows/ci.yml';
    const claims: CiClaims = {
      jti: randomUUID(),
      // GitHub names the environment in sub when the job has one, the ref otherwise.
      sub: opts.environment ? `repo:${repository}:environment:${opts.environment}` : `repo:${repository}:ref:${ref}`,
      ref,
      sha: randomBytes(20).toString('hex'),
      repository,
      repository_owner: owner,
      repository_owner_id: '1342004',
      repository_id: '708113441',
      repository_visibility: 'private',
      run_id: String(5_000_000_000 + Math.floor(Math.random() * 1e6)),
      run_number: '42',
      run_attempt: '1',
      runner_environment: 'github-hosted',
      actor: 'octocat',
      actor_id: '583231',
      workflow: 'CI',
      workflow_ref: `${repository}/${workflowPath}@${ref}`,
      workflow_sha: randomBytes(20).toString('hex'),
      head_ref: '',
      base_ref: '',
      event_name: 'push',
      ref_type: ref.startsWith('refs/tags/') ? 'tag' : 'branch',
      ref_protected: 'true',
      job_workflow_ref: `${repository}/${workflowPath}@${ref}`,
      job_workflow_sha: randomBytes(20).toString('hex'),
      iss: issuer,
      nbf: now,
      iat: now,
      exp: now + (opts.lifetime ?? 300),
    };
    if (opts.environment) claims.environment = opts.environment;
    for (const [k, v] of Object.entries(opts.claims ?? {})) {
      if (v === undefined) delete claims[k];
      else claims[k] = v;
    }
    return claims;
  };

  return {
    issuer,
    requests,
    currentKid: () => current.kid,
    jobClaims,
    mint: (audience, opts) => signWith(current, { ...jobClaims(opts), aud: audience }),
    sign: (claims) => signWith(current, claims),
    async rotate(opts = {}) {
      current = await newKey();
      published = opts.dropOld ? [current] : [...published, current];
      return current.kid;
    },
    signWithoutKid: (claims) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).sign(current.privateKey),
    async publishExtraKey() {
      const { publicKey } = await generateKeyPair('ES256', { extractable: true });
      const kid = randomBytes(8).toString('hex');
      published = [...published, { kid, privateKey: publicKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }, publicPem: '' }];
    },
    async signWithUnknownKey(claims) {
      const stranger = await newKey();
      return signWith(stranger, claims);
    },
    unsigned: (claims) => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
    hmacWithPublicKey(claims) {
      const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: current.kid })}.${b64(claims)}`;
      return `${input}.${createHmac('sha256', current.publicPem).update(input).digest('base64url')}`;
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
