import { readFileSync, statSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { isLoopbackHost } from '../util/loopback.js';

/** Asymmetric only: never `none`, never HMAC (whose "secret" would be the issuer's public key). */
export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'PS256'] as const;
/** Clock skew tolerated between the CI platform and Berth, for exp, nbf and iat. */
export const LEEWAY_SECONDS = 60;

const FETCH_TIMEOUT_MS = 5000;
// Keys are re-read at least this often even when every kid is known, so a withdrawn key stops working.
const JWKS_MAX_AGE_MS = 10 * 60_000;

/** The issuer's keys could not be had (down, timeout, bad document): the caller should retry, not re-authenticate. */
export class IssuerUnavailableError extends Error {
  override name = 'IssuerUnavailableError';
}

/** The ID token itself is not acceptable; the message says why and never contains the token. */
export class IdTokenRejectedError extends Error {
  override name = 'IdTokenRejectedError';
}

export interface IssuerKeysOptions {
  issuer: string;
  jwksURI: string | undefined;
  allowInsecureIssuer: boolean;
  cooldownSeconds: number;
  /** An absolute path to the issuer's key set, re-read when it changes (instead of discovery). */
  jwksFile?: string | undefined;
  /** The issuer's key set, given in the configuration (instead of discovery). */
  jwks?: JSONWebKeySet | undefined;
}

// How often a jwksFile is stat()ed for a change: often enough that a rotated key works at once.
const FILE_CHECK_MS = 1000;
const JWKS_FILE_MAX_BYTES = 1 << 20;

/** Reads and checks a key set file; throws with a message fit for check-config and the log. */
export function readJwksFile(path: string): JSONWebKeySet {
  let text: string;
  try {
    if (statSync(path).size > JWKS_FILE_MAX_BYTES) throw new Error('larger than 1 MiB');
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the key set file ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`the key set file ${path} is not JSON`);
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => k && typeof k === 'object' && typeof (k as { kty?: unknown }).kty === 'string')) {
    throw new Error(`the key set file ${path} is not a JSON Web Key Set ({"keys": [{"kty": …}, …]})`);
  }
  if (keys.some((k: Record<string, unknown>) => ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((m) => m in k))) {
    throw new Error(`the key set file ${path} holds a private or symmetric key; give the issuer's public keys only`);
  }
  return doc as JSONWebKeySet;
}

/**
 * A key set read from a file, for clusters whose issuer cannot be reached from Berth: the file is
 * stat()ed at most once a second and re-read when its mtime, size or inode changes. A change that
 * does not parse (a half-written file) keeps the previous keys until a good version appears.
 */
/** A key resolver that can also say how many keys it holds (a kid is required once there are several). */
type CountedKeys = JWTVerifyGetKey & { jwks(): { keys: unknown[] } | undefined };

function fileKeySet(path: string, onError: (message: string) => void): CountedKeys {
  let stamp = '';
  let checkedAt = 0;
  let getKey: ReturnType<typeof createLocalJWKSet> | undefined;
  let lastError = '';
  const refresh = () => {
    const now = Date.now();
    if (getKey && now - checkedAt < FILE_CHECK_MS) return;
    checkedAt = now;
    let next: string;
    try {
      const st = statSync(path);
      next = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (e) {
      lastError = `cannot read the key set file ${path}: ${(e as Error).message}`;
      if (!getKey) throw new IssuerUnavailableError(lastError);
      return onError(lastError);
    }
    if (next === stamp && getKey) return;
    try {
      getKey = createLocalJWKSet(readJwksFile(path));
      stamp = next;
      lastError = '';
    } catch (e) {
      lastError = (e as Error).message;
      if (!getKey) throw new IssuerUnavailableError(lastError);
      onError(`${lastError}; still using the previous keys`);
    }
  };
  const resolve: JWTVerifyGetKey = (header, token) => {
    refresh();
    return getKey!(header, token);
  };
  return Object.assign(resolve, { jwks: () => getKey?.jwks() });
}

function acceptableURL(value: unknown, allowInsecure: boolean): URL | null {
  if (typeof value !== 'string') return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && allowInsecure && isLoopbackHost(url.hostname)) return url;
  return null;
}

function describeFailure(e: unknown): string {
  if (e instanceof errors.JWKSTimeout || (e instanceof Error && e.name === 'TimeoutError')) return 'timed out';
  if (e instanceof Error) return (e.cause instanceof Error ? e.cause.message : '') || e.message;
  return String(e);
}

/**
 * One issuer's signing keys: found through OIDC discovery on first use (a failure is not
 * remembered, so an issuer that was down is tried again by the next request), then held by jose's
 * remote key set, which re-fetches when a token names an unknown kid, at most once per cooldown.
 */
export class IssuerKeys {
  private keySet: Promise<JWTVerifyGetKey> | undefined;

  constructor(
    private readonly opts: IssuerKeysOptions,
    private readonly onKeyFileError: (message: string) => void = () => {},
  ) {}

  get issuer(): string {
    return this.opts.issuer;
  }

  private async discoverJwksURI(): Promise<URL> {
    const where = `${this.opts.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    let doc: unknown;
    try {
      const res = await fetch(where, { redirect: 'error', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: { accept: 'application/json' } });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      doc = await res.json();
    } catch (e) {
      throw new IssuerUnavailableError(`cannot read the OpenID configuration of issuer ${this.opts.issuer}: ${describeFailure(e)}`);
    }
    const meta = (doc && typeof doc === 'object' ? doc : {}) as Record<string, unknown>;
    // OpenID Connect Discovery 1.0 §4.3: the document must name exactly the issuer it was fetched for.
    if (meta.issuer !== this.opts.issuer) throw new IssuerUnavailableError(`the OpenID configuration at ${where} names a different issuer`);
    const jwks = acceptableURL(meta.jwks_uri, this.opts.allowInsecureIssuer);
    if (!jwks) throw new IssuerUnavailableError(`the OpenID configuration of issuer ${this.opts.issuer} has no usable jwks_uri (an https URL is required)`);
    return jwks;
  }

  private keys(): Promise<JWTVerifyGetKey> {
    this.keySet ??= (async () => {
      const local = this.opts.jwks ? createLocalJWKSet(this.opts.jwks) : this.opts.jwksFile !== undefined ? fileKeySet(this.opts.jwksFile, this.onKeyFileError) : undefined;
      const url = local ? undefined : this.opts.jwksURI !== undefined ? new URL(this.opts.jwksURI) : await this.discoverJwksURI();
      const remote: CountedKeys = local ?? createRemoteJWKSet(url!, { timeoutDuration: FETCH_TIMEOUT_MS, cooldownDuration: this.opts.cooldownSeconds * 1000, cacheMaxAge: JWKS_MAX_AGE_MS });
      const getKey: JWTVerifyGetKey = async (header, token) => {
        try {
          const key = await remote(header, token);
          // Without a kid, jose picks the one key of the token's algorithm; with several keys
          // published that choice is a guess (and an old key kept for rotation could be the one
          // picked), so the token must say which key signed it.
          const published = header.kid === undefined ? (remote.jwks()?.keys.length ?? 0) : 0;
          if (published > 1) throw new IdTokenRejectedError(`the ID token names no kid, and the issuer publishes ${published} keys: a kid is required to choose one`);
          return key;
        } catch (e) {
          if (e instanceof IdTokenRejectedError) throw e;
          if (e instanceof errors.JWKSNoMatchingKey) {
            throw new IdTokenRejectedError(`the issuer publishes no key with the ID token's kid ${JSON.stringify(String(header.kid ?? '(none)').slice(0, 100))}`);
          }
          if (e instanceof errors.JWKSMultipleMatchingKeys) throw new IdTokenRejectedError('the ID token names no kid and several of the issuer\'s keys could have signed it');
          throw new IssuerUnavailableError(`cannot read the signing keys of issuer ${this.opts.issuer}: ${describeFailure(e)}`);
        }
      };
      return getKey;
    })();
    this.keySet.catch(() => {
      this.keySet = undefined;
    });
    return this.keySet;
  }

  /** Signature, algorithm, iss and the times; audience and the other claims are the policies' business. */
  async verify(token: string): Promise<JWTPayload> {
    const getKey = await this.keys();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        issuer: this.opts.issuer,
        algorithms: [...ALLOWED_ALGORITHMS],
        clockTolerance: LEEWAY_SECONDS,
        requiredClaims: ['exp', 'iat'],
      }));
    } catch (e) {
      throw translate(e);
    }
    // jose checks iat only against a maximum age; a token dated in the future is as suspect as an early nbf.
    if (typeof payload.iat === 'number' && payload.iat > Date.now() / 1000 + LEEWAY_SECONDS) throw new IdTokenRejectedError('the ID token is issued in the future (iat); check the clocks');
    return payload;
  }
}

function translate(e: unknown): Error {
  if (e instanceof IdTokenRejectedError || e instanceof IssuerUnavailableError) return e;
  if (e instanceof errors.JWTExpired) return new IdTokenRejectedError('the ID token has expired (exp); request a fresh one in the job');
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === 'nbf') return new IdTokenRejectedError('the ID token is not yet valid (nbf); check the clocks');
    if (e.reason === 'missing') return new IdTokenRejectedError(`the ID token has no ${e.claim} claim`);
    return new IdTokenRejectedError(`the ID token's ${e.claim} claim is invalid`);
  }
  if (e instanceof errors.JOSEAlgNotAllowed) return new IdTokenRejectedError(`the ID token's algorithm is not accepted (allowed: ${ALLOWED_ALGORITHMS.join(', ')})`);
  if (e instanceof errors.JWSSignatureVerificationFailed) return new IdTokenRejectedError('the ID token\'s signature does not verify');
  if (e instanceof errors.JOSEError) return new IdTokenRejectedError('malformed ID token');
  // Whatever else jose may throw on hostile input is still the token's fault, not a server error.
  return new IdTokenRejectedError('the ID token could not be verified');
}
