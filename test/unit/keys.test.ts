import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, exportJWK, importX509, jwtVerify } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { libtrustKeyId, thumbprintKeyId } from '../../src/tokens/key-id.js';
import { generateKeyPair, type KeygenAlg } from '../../src/tokens/keygen.js';
import { loadPublishedKey, loadSigningKey, type SigningKey } from '../../src/tokens/keys.js';
import { RegistryTokenSigner } from '../../src/tokens/registry-jwt.js';

// A throw-away P-256 key made for this test with `openssl genpkey -algorithm EC -pkeyopt
// ec_paramgen_curve:P-256`. It signs nothing anywhere.
const FIXED_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg46aadvrZ9fOOPpBu
/OwZN6ye/n9zm+yDAlK5AtTeWkWhRANCAAR402mNJiWtDDsr2dWlfJRxV7qvveA5
sEQfh4HdQm8+J9epQ4b9nlRsnAWU0mQmHxkb5GxhJhYNYIq92PD/Q74C
-----END PRIVATE KEY-----
`;
// Its key id as computed outside Node with:
//   openssl pkey -pubout -outform DER | sha256sum | cut -c1-60 | xxd -r -p | base32 | fold -w4 | paste -sd:
const FIXED_KEY_ID_FROM_OPENSSL = 'PCKU:5XOZ:RRYP:NXPS:64UP:YDNA:KLWS:UEIP:VGI7:MRC3:YAIY:2ZKH';

const LIBTRUST_FORMAT = /^[A-Z2-7]{4}(?::[A-Z2-7]{4}){11}$/;

/** RFC 4648 base32 without padding, written bit by bit so it shares nothing with the code under test. */
function rfc4648Base32(bytes: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const b of bytes) bits += b.toString(2).padStart(8, '0');
  while (bits.length % 5) bits += '0';
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  return out;
}

function independentKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const first30 = createHash('sha256').update(der).digest().subarray(0, 30);
  const b32 = rfc4648Base32(first30);
  const groups: string[] = [];
  for (let i = 0; i < b32.length; i += 4) groups.push(b32.slice(i, i + 4));
  return groups.join(':');
}

describe('libtrust key id', () => {
  it('matches a known answer for a fixed key, computed two independent ways', () => {
    const pub = createPublicKey(createPrivateKey(FIXED_KEY));
    expect(independentKeyId(pub)).toBe(FIXED_KEY_ID_FROM_OPENSSL);
    expect(libtrustKeyId(pub)).toBe(FIXED_KEY_ID_FROM_OPENSSL);
  });

  it('has 12 groups of 4 base32 characters for every key type', async () => {
    for (const alg of ['ES256', 'RS256', 'EdDSA'] as const) {
      const { keyPem } = await generateKeyPair(alg);
      const pub = createPublicKey(keyPem);
      const kid = libtrustKeyId(pub);
      expect(kid).toMatch(LIBTRUST_FORMAT);
      expect(kid).toBe(independentKeyId(pub));
    }
  });

  it('differs between keys', async () => {
    const a = createPublicKey((await generateKeyPair('ES256')).keyPem);
    const b = createPublicKey((await generateKeyPair('ES256')).keyPem);
    expect(libtrustKeyId(a)).not.toBe(libtrustKeyId(b));
  });

  it('the thumbprint kid is the RFC 7638 SHA-256 thumbprint', async () => {
    const pub = createPublicKey(createPrivateKey(FIXED_KEY));
    const jwk = await exportJWK(pub);
    // RFC 7638: the required members in lexicographic order, no whitespace.
    const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
    const expected = createHash('sha256').update(canonical).digest('base64url');
    expect(await thumbprintKeyId(pub)).toBe(expected);
    expect(await calculateJwkThumbprint(jwk)).toBe(expected);
  });
});

describe('loading signing keys', () => {
  it('loads an RSA key as PKCS#1 and as PKCS#8, with the same key id', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
    const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(pkcs1).toContain('BEGIN RSA PRIVATE KEY');
    expect(pkcs8).toContain('BEGIN PRIVATE KEY');
    const a = await loadSigningKey(pkcs1);
    const b = await loadSigningKey(pkcs8);
    expect(a.alg).toBe('RS256');
    expect(b.alg).toBe('RS256');
    expect(a.libtrustKid).toBe(b.libtrustKid);
    expect(a.x5c).toBeNull();
  });

  it('loads an EC key as SEC1 and as PKCS#8, with the same key id', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const sec1 = privateKey.export({ type: 'sec1', format: 'pem' }) as string;
    const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(sec1).toContain('BEGIN EC PRIVATE KEY');
    const a = await loadSigningKey(sec1);
    const b = await loadSigningKey(pkcs8);
    expect(a.alg).toBe('ES256');
    expect(a.libtrustKid).toBe(b.libtrustKid);
    expect(a.thumbprintKid).toBe(b.thumbprintKid);
  });

  it('picks the algorithm from the key', async () => {
    expect((await loadSigningKey(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)).alg).toBe('ES384');
    expect((await loadSigningKey(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)).alg).toBe('EdDSA');
  });

  it('refuses a key on an unsupported curve, garbage, and an encrypted key', async () => {
    await expect(loadSigningKey(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)).rejects.toThrow(/unsupported EC curve/);
    await expect(loadSigningKey('not a key')).rejects.toThrow('not a PEM private key');
    const encrypted = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string;
    await expect(loadSigningKey(encrypted)).rejects.toThrow('not a PEM private key');
  });

  it('takes the certificate chain as x5c, leaf first, and refuses a certificate of another key', async () => {
    const mine = await generateKeyPair('ES256');
    const other = await generateKeyPair('ES256');
    const k = await loadSigningKey(mine.keyPem, mine.certPem + other.certPem);
    expect(k.x5c).toHaveLength(2);
    expect(k.x5c![0]).toBe(new X509Certificate(mine.certPem).raw.toString('base64'));
    await expect(loadSigningKey(mine.keyPem, other.certPem)).rejects.toThrow('the certificate does not match the private key');
    await expect(loadSigningKey(mine.keyPem, 'no certificate here')).rejects.toThrow('no PEM certificate found');
  });

  it('loads a published (verification only) key from a certificate or a public key', async () => {
    const pair = await generateKeyPair('RS256');
    const fromCert = await loadPublishedKey(pair.certPem);
    const fromPub = await loadPublishedKey(createPublicKey(pair.keyPem).export({ type: 'spki', format: 'pem' }) as string);
    const signing = await loadSigningKey(pair.keyPem, pair.certPem);
    expect(fromCert.thumbprintKid).toBe(signing.thumbprintKid);
    expect(fromPub.libtrustKid).toBe(signing.libtrustKid);
    await expect(loadPublishedKey('junk')).rejects.toThrow(/not a PEM certificate/);
  });
});

describe('registry JWTs', () => {
  const keys = new Map<KeygenAlg, { key: SigningKey; certPem: string }>();
  beforeAll(async () => {
    for (const alg of ['ES256', 'RS256', 'EdDSA'] as const) {
      const pair = await generateKeyPair(alg);
      keys.set(alg, { key: await loadSigningKey(pair.keyPem, pair.certPem), certPem: pair.certPem });
    }
  });

  for (const alg of ['ES256', 'RS256', 'EdDSA'] as const) {
    it(`${alg}: verifies with jose against the public key and carries the registry claims`, async () => {
      const { key } = keys.get(alg)!;
      const signer = new RegistryTokenSigner(key, 'berth-test', 300, 'libtrust');
      const access = [{ type: 'repository', name: 'host:5000/team/app', actions: ['pull', 'push'] }];
      const { token, issuedAt, expiresIn } = signer.sign({ sub: 'alice', aud: 'registry.local', access });
      const { payload, protectedHeader } = await jwtVerify(token, key.publicKey, { issuer: 'berth-test', audience: 'registry.local', algorithms: [alg] });
      expect(protectedHeader.alg).toBe(alg);
      expect(protectedHeader.typ).toBe('JWT');
      expect(protectedHeader.kid).toBe(key.libtrustKid);
      expect(protectedHeader.kid).toMatch(LIBTRUST_FORMAT);
      expect(typeof payload.aud).toBe('string');
      expect(payload.aud).toBe('registry.local');
      expect(payload.sub).toBe('alice');
      expect(payload.iss).toBe('berth-test');
      expect(payload.exp! - payload.iat!).toBe(300);
      expect(payload.iat).toBe(issuedAt);
      expect(expiresIn).toBe(300);
      expect(payload.nbf).toBeLessThanOrEqual(payload.iat!);
      expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(5);
      expect(payload.access).toEqual(access);
    });
  }

  it('refuses verification with another key (the signature is real)', async () => {
    const signer = new RegistryTokenSigner(keys.get('ES256')!.key, 'i', 60, 'libtrust');
    const { token } = signer.sign({ sub: 'a', aud: 's', access: [] });
    const other = await loadSigningKey((await generateKeyPair('ES256')).keyPem);
    await expect(jwtVerify(token, other.publicKey)).rejects.toThrow();
    const tampered = token.replace(/\.([^.]+)\./, (_m, p: string) => `.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'admin' })).toString('base64url')}.`);
    await expect(jwtVerify(tampered, keys.get('ES256')!.key.publicKey)).rejects.toThrow();
  });

  it('jti is random: 200 tokens, 200 distinct ids of at least 128 bits', async () => {
    const signer = new RegistryTokenSigner(keys.get('ES256')!.key, 'i', 60, 'libtrust');
    const now = Math.floor(Date.now() / 1000);
    const ids = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const { payload } = await jwtVerify(signer.sign({ sub: 'a', aud: 's', access: [] }, now).token, keys.get('ES256')!.key.publicKey);
      expect(Buffer.from(payload.jti!, 'base64url').length).toBeGreaterThanOrEqual(16);
      ids.add(payload.jti!);
    }
    expect(ids.size).toBe(200);
  });

  it('anonymous tokens have sub ""', async () => {
    const signer = new RegistryTokenSigner(keys.get('ES256')!.key, 'i', 60, 'libtrust');
    const { payload } = await jwtVerify(signer.sign({ sub: '', aud: 's', access: [] }).token, keys.get('ES256')!.key.publicKey);
    expect(payload.sub).toBe('');
  });

  it('x5c holds the configured certificate, and the token verifies with the key from it', async () => {
    const { key, certPem } = keys.get('RS256')!;
    const { token } = new RegistryTokenSigner(key, 'i', 60, 'libtrust').sign({ sub: 'a', aud: 's', access: [] });
    const header = decodeProtectedHeader(token);
    expect(header.x5c).toEqual([new X509Certificate(certPem).raw.toString('base64')]);
    const leafPem = `-----BEGIN CERTIFICATE-----\n${header.x5c![0]!.replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----`;
    await expect(jwtVerify(token, await importX509(leafPem, 'RS256'))).resolves.toBeTruthy();
  });

  it('has no x5c without a certificate', async () => {
    const bare = await loadSigningKey((await generateKeyPair('ES256')).keyPem);
    const header = decodeProtectedHeader(new RegistryTokenSigner(bare, 'i', 60, 'libtrust').sign({ sub: 'a', aud: 's', access: [] }).token);
    expect(header.x5c).toBeUndefined();
    expect(header.kid).toBe(bare.libtrustKid);
  });

  it('can use the RFC 7638 thumbprint as kid instead', async () => {
    const { key } = keys.get('ES256')!;
    const header = decodeProtectedHeader(new RegistryTokenSigner(key, 'i', 60, 'thumbprint').sign({ sub: 'a', aud: 's', access: [] }).token);
    expect(header.kid).toBe(await calculateJwkThumbprint(await exportJWK(key.publicKey)));
  });

  it('concurrent signatures sharing the signer\'s input buffer each sign their own token (ES256, RS256, EdDSA)', async () => {
    // The signer rewrites one buffer for every token and relies on node:crypto copying the input
    // when a job is created. Were it not copied, tokens in flight would be signed over the bytes of
    // a later one and fail to verify.
    for (const alg of ['ES256', 'RS256', 'EdDSA'] as const) {
      const { key } = keys.get(alg)!;
      const signer = new RegistryTokenSigner(key, 'i', 60, 'libtrust');
      const names = Array.from({ length: 64 }, (_, i) => `team/app-${i}-${'x'.repeat(i * 40)}`);
      const tokens = await Promise.all(names.map((name) => signer.signAsync({ sub: `user-${name.length}`, aud: 's', access: [{ type: 'repository', name, actions: ['pull'] }] })));
      for (const [i, t] of tokens.entries()) {
        const { payload } = await jwtVerify(t.token, key.publicKey, { algorithms: [alg] });
        expect((payload.access as { name: string }[])[0]!.name).toBe(names[i]);
        expect(t.token).toBe(`${t.header}.${t.rest}`);
      }
      // A token longer than the buffer grows it; the next short one still verifies.
      const long = signer.sign({ sub: 'a', aud: 's', access: [{ type: 'repository', name: 'n'.repeat(20_000), actions: ['pull'] }] });
      const short = signer.sign({ sub: 'b', aud: 's', access: [] });
      await expect(jwtVerify(long.token, key.publicKey)).resolves.toBeTruthy();
      await expect(jwtVerify(short.token, key.publicKey)).resolves.toBeTruthy();
    }
  });

  it('keeps a resource class in the access claim', async () => {
    const { key } = keys.get('ES256')!;
    const access = [{ type: 'repository', class: 'plugin', name: 'p', actions: ['pull'] }];
    const { payload } = await jwtVerify(new RegistryTokenSigner(key, 'i', 60, 'libtrust').sign({ sub: 'a', aud: 's', access }).token, key.publicKey);
    expect(payload.access).toEqual(access);
  });
});
