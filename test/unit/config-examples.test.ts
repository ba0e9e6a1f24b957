import { createPublicKey } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { writeKeyPair } from '../../src/tokens/keygen.js';
import { ROOT } from '../helpers/build.js';

// Every configuration file shipped in config/ must load: examples drift silently otherwise.

let keys: string;

beforeAll(async () => {
  keys = mkdtempSync(join(tmpdir(), 'berth-example-keys-'));
  const { certPath } = await writeKeyPair(keys, 'ES256');
  copyFileSync(certPath, join(keys, 'next-cert.pem'));
  // kubernetes.yaml reads a cluster's key set from a file (jwksFile); any public key will do.
  writeFileSync(join(keys, 'edge-cluster-jwks.json'), JSON.stringify({ keys: [createPublicKey(readFileSync(certPath)).export({ format: 'jwk' })] }));
});

afterAll(() => rmSync(keys, { recursive: true, force: true }));

const files = [
  ...readdirSync(join(ROOT, 'config/examples')).map((f) => join('config/examples', f)),
  'config/demo.yaml',
].filter((f) => f.endsWith('.yaml'));

describe('shipped configuration files', () => {
  it.each(files)('%s loads', async (file) => {
    const text = readFileSync(join(ROOT, file), 'utf8').replaceAll('/etc/berth/keys', keys);
    for (const m of text.matchAll(/\$\{env:([A-Z0-9_]+)\}/g)) process.env[m[1]!] ??= m[1]!.includes('REDIS_URL') ? 'redis://127.0.0.1:6379' : m[1]!.includes('SHA256') ? 'a'.repeat(64) : 'example-value-long-enough-for-an-encryption-key';
    const config = await loadConfigText(text, join(ROOT, 'config'));
    expect(config.raw.acl.length).toBeGreaterThan(0);
  });
});
