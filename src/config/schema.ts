import { z } from 'zod';
import { connectorSchema } from './connectors.js';
import { federationPolicySchema } from './federation.js';

// Strict objects everywhere: docker_auth silently ignores unknown keys, which turns a typo in an ACL
// match into "grant everything". Berth refuses to start instead.
const labelValues = z.union([z.string(), z.array(z.string())]);
const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

const durationSeconds = z.union([z.number().int().positive(), z.string().regex(/^\d+[smhd]?$/, 'a duration such as 900, 15m, 12h or 30d')]);

export const userSchema = z.strictObject({
  password: z.string().optional(),
  passwordFile: z.string().optional(),
  labels: z.record(z.string(), labelValues).optional(),
});

export const matchSchema = z.strictObject({
  account: z.string().optional(),
  type: z.string().optional(),
  name: z.string().optional(),
  service: z.string().optional(),
  ip: z.string().optional(),
  labels: z.record(z.string(), stringOrList).optional(),
});

export const aclRuleSchema = z.strictObject({
  match: matchSchema,
  actions: z.array(z.string()),
  comment: z.string().optional(),
});

// A key that is only published in the JWKS (the previous or next one during a rotation).
const keyPairSchema = z
  .strictObject({ key: z.string().optional(), certificate: z.string().optional() })
  .refine((k) => k.key !== undefined || k.certificate !== undefined, 'needs key or certificate');

export const tokenSchema = z.strictObject({
  issuer: z.string().min(1).default('berth'),
  expiration: durationSeconds.default(900),
  certificate: z.string().optional(),
  key: z.string().optional(),
  // Berth additions
  services: z.array(z.string().min(1)).optional(),
  kid: z.enum(['libtrust', 'thumbprint']).default('libtrust'),
  publishedKeys: z.array(keyPairSchema).default([]),
  generatedKeyDir: z.string().default('.berth/keys'),
  generatedKeyAlg: z.enum(['ES256', 'RS256', 'EdDSA']).default('ES256'),
  refreshTTL: durationSeconds.default('30d'),
  path: z.string().startsWith('/').default('/auth'),
  /**
   * Seconds an identical repeated GET gets the same signed token back, and a verified username +
   * password is not verified again (0 = neither).
   */
  reuseWindow: z.number().int().min(0).max(60).default(10),
});

export const serverSchema = z.strictObject({
  addr: z.string().default(':5001'),
  publicURL: z.string().url().optional(),
  certificate: z.string().optional(),
  key: z.string().optional(),
  /** Alone (no trustedProxies): one forwarded hop, from loopback/private-network peers only. Deprecated. */
  trustProxy: z.boolean().default(false),
  /** CIDRs of the proxies whose X-Forwarded-For / -Proto count; walked from the right past these. */
  trustedProxies: z.array(z.string()).optional(),
  realIPHeader: z.string().optional(),
});

export const storeSchema = z.strictObject({
  type: z.enum(['memory', 'redis']).default('memory'),
  redis: z
    .strictObject({
      url: z.string().optional(),
      keyPrefix: z.string().default('berth:'),
      sentinels: z.array(z.strictObject({ host: z.string(), port: z.number().int() })).optional(),
      name: z.string().optional(),
      cluster: z.array(z.strictObject({ host: z.string(), port: z.number().int() })).optional(),
      password: z.string().optional(),
      db: z.number().int().min(0).optional(),
    })
    .optional(),
});

export const logSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export const patsSchema = z.strictObject({
  defaultTTL: durationSeconds.default('30d'),
  maxTTL: durationSeconds.default('90d'),
  maxPerUser: z.number().int().positive().default(20),
});

export const webSchema = z.strictObject({
  /** Shown in the ready-made `docker login HOST` command. */
  registryHost: z.string().default('registry.example.com'),
  title: z.string().default('Berth'),
  sessionTTL: durationSeconds.default('12h'),
  /** Offer a username/password form for the static `users:` (they can create PATs too). */
  localLogin: z.boolean().default(true),
});

export const continuousAccessSchema = z.strictObject({
  /** How long a user's groups are trusted before Berth asks the identity provider again. */
  ttl: durationSeconds.default('15m'),
  /** How long past that the last known groups still count while the provider is unreachable. */
  grace: durationSeconds.default('1h'),
});

export const secretsSchema = z.strictObject({
  /** Encrypts upstream tokens at rest: 32+ random bytes, base64 or hex; required with the redis store. */
  encryptionKey: z.string().min(32).optional(),
});

export const limitsSchema = z
  .strictObject({
    /** Failed authentications per account from one address within `window` before that address is locked out of it for `lockout`. */
    failuresPerAccount: z.number().int().positive().default(10),
    /** Failures per account from all addresses together before the account is locked out everywhere (default 10 × failuresPerAccount). */
    failuresPerAccountTotal: z.number().int().positive().optional(),
    failuresPerIP: z.number().int().positive().default(100),
    window: durationSeconds.default('15m'),
    lockout: durationSeconds.default('15m'),
  })
  .superRefine((l, ctx) => {
    // At or below the per-address limit, one address could lock the owner out again.
    if (l.failuresPerAccountTotal !== undefined && l.failuresPerAccountTotal <= l.failuresPerAccount)
      ctx.addIssue({ code: 'custom', path: ['failuresPerAccountTotal'], message: `must be more than failuresPerAccount (${l.failuresPerAccount}), or one address could lock the account out everywhere` });
  });

export const adminSchema = z.strictObject({
  /** Members of any of these groups administer robots. */
  groups: z.array(z.string()).default([]),
  /** These accounts (usernames) too. */
  accounts: z.array(z.string()).default([]),
});

export const robotSchema = z.strictObject({
  name: z.string().regex(/^(robot:)?[a-z0-9][a-z0-9._-]{0,62}$/, 'robot:NAME with lowercase letters, digits, ".", "_", "-"'),
  description: z.string().default(''),
  /** Globs only, as for robots made through the API (a `/regex/` is refused by the loader: restrictionPatternProblem). */
  repositories: z.array(z.string().min(1)).min(1),
  actions: z.array(z.enum(['pull', 'push', 'delete', '*'])).min(1),
  /** ISO 8601 date or date-time after which the robot stops working. */
  expires: z.string().refine((v) => !Number.isNaN(Date.parse(v)), 'an ISO 8601 date').optional(),
  /** SHA-256 (hex) of the robot's secret, e.g. from `berth robot secret`; keep it in an env var or file. */
  secretSHA256: z.string().regex(/^[0-9a-f]{64}$/, '64 hex characters (sha256 of the secret)'),
});

export const configSchema = z.strictObject({
  server: serverSchema.prefault({}),
  token: tokenSchema.prefault({}),
  users: z.record(z.string(), userSchema).default({}),
  acl: z.array(aclRuleSchema).default([]),
  store: storeSchema.prefault({}),
  log: logSchema.prefault({}),
  connectors: z.array(connectorSchema).default([]),
  federation: z.array(federationPolicySchema).default([]),
  pats: patsSchema.prefault({}),
  web: webSchema.prefault({}),
  continuousAccess: continuousAccessSchema.prefault({}),
  secrets: secretsSchema.prefault({}),
  limits: limitsSchema.prefault({}),
  admin: adminSchema.prefault({}),
  robots: z.array(robotSchema).default([]),
  demo: z.boolean().default(false),
});

export type RawConfig = z.infer<typeof configSchema>;
export type AclRuleConfig = z.infer<typeof aclRuleSchema>;
export type UserConfig = z.infer<typeof userSchema>;

/** A `users:` entry as resolved by the loader (password file read, labels as lists). */
export interface StaticUser {
  /** bcrypt hash, or null for the anonymous user `''`. */
  hash: string | null;
  labels: Record<string, string[]>;
}
