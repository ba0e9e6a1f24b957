import { readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeDir } from '../util/make-dir.js';
import { webcrypto, randomBytes } from 'node:crypto';
import type * as X509 from '@peculiar/x509';

export type KeygenAlg = 'ES256' | 'RS256' | 'EdDSA';

/** A refusal or a path that cannot hold keys: a one-line message for the person, not a bug. */
export class KeygenError extends Error {
  override name = 'KeygenError';
}

let x509Module: Promise<typeof X509> | undefined;

/**
 * @peculiar/x509 (with reflect-metadata, tsyringe and its ASN.1 schemas) is loaded only when a
 * certificate is made: a server that starts with its key pair already on disk never needs it
 * (resident memory after loading the server: 109 MB with it, 98 MB without).
 */
function loadX509(): Promise<typeof X509> {
  x509Module ??= (async () => {
    await import('reflect-metadata'); // @peculiar/x509 needs it loaded first
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    return x509;
  })();
  return x509Module;
}

const PARAMS: Record<KeygenAlg, { gen: EcKeyGenParams | RsaHashedKeyGenParams | Algorithm; sig: Algorithm | EcdsaParams }> = {
  ES256: { gen: { name: 'ECDSA', namedCurve: 'P-256' } as EcKeyGenParams, sig: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams },
  RS256: {
    gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as RsaHashedKeyGenParams,
    sig: { name: 'RSASSA-PKCS1-v1_5' },
  },
  EdDSA: { gen: { name: 'Ed25519' }, sig: { name: 'Ed25519' } },
};

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

/**
 * A private key and a self-signed certificate for it. No extended key usage is set on purpose:
 * registry 2.8 verifies the x5c chain with Go's default usage check, which an EKU list without
 * serverAuth would fail.
 */
export async function generateKeyPair(alg: KeygenAlg, commonName = 'berth token signer', days = 3650): Promise<{ keyPem: string; certPem: string }> {
  const p = PARAMS[alg];
  const x509 = await loadX509();
  const keys = (await webcrypto.subtle.generateKey(p.gen as never, true, ['sign', 'verify'])) as CryptoKeyPair;
  const serial = randomBytes(16);
  serial[0]! &= 0x7f; // positive serial: Go rejects negative ones
  const notBefore = new Date(Date.now() - 60_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: `CN=${commonName}`,
    notBefore,
    notAfter: new Date(notBefore.getTime() + days * 86_400_000),
    keys,
    signingAlgorithm: p.sig,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true)],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keyPem: pem('PRIVATE KEY', pkcs8), certPem: cert.toString('pem') + '\n' };
}

/**
 * Writes key.pem (mode 0600) and cert.pem into dir; returns their paths. Without force it refuses
 * to replace either: a registry configured with the old certificate would refuse every token
 * signed by the new key.
 */
export async function writeKeyPair(dir: string, alg: KeygenAlg, opts: { force?: boolean } = {}): Promise<{ keyPath: string; certPath: string }> {
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  try {
    makeDir(dir, 0o700);
  } catch (e) {
    throw new KeygenError((e as Error).message);
  }
  if (!opts.force) {
    const there = [keyPath, certPath].filter((p) => existsSync(p));
    if (there.length) throw new KeygenError(`${there.join(' and ')} already exist${there.length === 1 ? 's' : ''}; a registry that trusts the old certificate would refuse every token signed with a new key. Use --force to replace ${there.length === 1 ? 'it' : 'them'} (then give the registry the new cert.pem)`);
  }
  const { keyPem, certPem } = await generateKeyPair(alg);
  // A mode given to writeFileSync applies only when it creates the file: write a fresh 0600 file
  // and move it over, so an old world-readable key.pem never holds the new key.
  const tmp = `${keyPath}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, keyPem, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, keyPath);
    writeFileSync(certPath, certPem, { mode: 0o644 });
  } catch (e) {
    rmSync(tmp, { force: true }); // no stray copy of a private key
    throw new KeygenError(`cannot write keys into ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return { keyPath, certPath };
}

/** Reuses a previously generated pair so a registry configured with its certificate keeps trusting us. */
export async function ensureKeyPair(dir: string, alg: KeygenAlg): Promise<{ keyPath: string; certPath: string; keyPem: string; certPem: string; created: boolean }> {
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  let created = false;
  if (!existsSync(keyPath) || !existsSync(certPath)) {
    // One of the two is missing, so the pair is unusable anyway: make a new one.
    await writeKeyPair(dir, alg, { force: true });
    created = true;
  }
  return { keyPath, certPath, keyPem: readFileSync(keyPath, 'utf8'), certPem: readFileSync(certPath, 'utf8'), created };
}
