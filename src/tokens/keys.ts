import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { libtrustKeyId, publicJwk, thumbprintKeyId } from './key-id.js';

export type SigningAlg = 'RS256' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';

export interface SigningKey {
  alg: SigningAlg;
  privateKey: KeyObject;
  publicKey: KeyObject;
  libtrustKid: string;
  thumbprintKid: string;
  /** DER certificates, leaf first, base64 (standard, not url) as JWS x5c wants. */
  x5c: string[] | null;
  jwk: JWK;
}

function algFor(key: KeyObject): SigningAlg {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'RS256';
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return 'ES256';
      if (curve === 'secp384r1') return 'ES384';
      if (curve === 'secp521r1') return 'ES512';
      throw new Error(`unsupported EC curve ${curve}`);
    }
    case 'ed25519':
      return 'EdDSA';
    default:
      throw new Error(`unsupported key type ${key.asymmetricKeyType}`);
  }
}

function splitPemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * Parses a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC, as openssl writes them) and an optional PEM
 * certificate chain. Throws with a plain message when the two do not belong together.
 */
export async function loadSigningKey(keyPem: string, certPem?: string): Promise<SigningKey> {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch {
    throw new Error('not a PEM private key');
  }
  const publicKey = createPublicKey(privateKey);
  const alg = algFor(privateKey);
  let x5c: string[] | null = null;
  if (certPem !== undefined) {
    const blocks = splitPemCertificates(certPem);
    if (blocks.length === 0) throw new Error('no PEM certificate found');
    const certs = blocks.map((b) => new X509Certificate(b));
    if (!certs[0]!.checkPrivateKey(privateKey)) throw new Error('the certificate does not match the private key');
    x5c = certs.map((c) => c.raw.toString('base64'));
  }
  return {
    alg,
    privateKey,
    publicKey,
    libtrustKid: libtrustKeyId(publicKey),
    thumbprintKid: await thumbprintKeyId(publicKey),
    x5c,
    jwk: await publicJwk(publicKey),
  };
}

export interface PublishedKey {
  alg: SigningAlg;
  publicKey: KeyObject;
  thumbprintKid: string;
  libtrustKid: string;
  jwk: JWK;
}

/** A key that is only published (rotation): from a certificate, a public key or a private key PEM. */
export async function loadPublishedKey(pem: string): Promise<PublishedKey> {
  let publicKey: KeyObject;
  const cert = splitPemCertificates(pem)[0];
  try {
    publicKey = cert ? new X509Certificate(cert).publicKey : createPublicKey(pem);
  } catch {
    throw new Error('not a PEM certificate, public key or private key');
  }
  return {
    alg: algFor(publicKey),
    publicKey,
    thumbprintKid: await thumbprintKeyId(publicKey),
    libtrustKid: libtrustKeyId(publicKey),
    jwk: await publicJwk(publicKey),
  };
}
