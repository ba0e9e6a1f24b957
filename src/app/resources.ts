import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { MemoryStore } from '../store/memory.js';
import { RedisStore } from '../store/redis.js';
import type { Store } from '../store/store.js';
import { ensureKeyPair } from '../tokens/keygen.js';
import { loadSigningKey, type SigningKey } from '../tokens/keys.js';
import type { Config } from './load-config.js';

// What the composition root opens from the settings before it wires anything: the store, and the
// signing key (configured, or generated once into token.generatedKeyDir).

export async function openStore(config: Config, log: Logger): Promise<Store> {
  const s = config.raw.store;
  if (s.type === 'memory') return new MemoryStore();
  const r = s.redis ?? { keyPrefix: 'berth:' };
  const store = new RedisStore({ url: r.url, keyPrefix: r.keyPrefix, sentinels: r.sentinels, name: r.name, cluster: r.cluster, password: r.password, db: r.db, log });
  try {
    await store.open();
  } catch (e) {
    // Start anyway: static users keep working and /readyz reports the store until it returns.
    log.error({ err: (e as Error).message }, 'redis not reachable at start; retrying in the background');
  }
  return store;
}

export async function resolveSigningKey(config: Config, log: Logger): Promise<{ key: SigningKey; certificatePath: string | null }> {
  if (config.token.signingKey) {
    return { key: config.token.signingKey, certificatePath: config.raw.token.certificate ? resolve(config.baseDir, config.raw.token.certificate) : null };
  }
  const pair = await ensureKeyPair(config.token.generatedKeyDir, config.token.generatedKeyAlg);
  log.info({ certificate: pair.certPath, created: pair.created }, 'no token.key configured: using a generated signing key; point the registry rootcertbundle at this certificate');
  return { key: await loadSigningKey(pair.keyPem, pair.certPem), certificatePath: pair.certPath };
}
