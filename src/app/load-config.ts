import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { dirname, resolve } from 'node:path';
import yaml from 'js-yaml';
import type { z } from 'zod';
import { Acl, AclCompileError, compileRule } from '../policy/acl.js';
import { loadPublishedKey, loadSigningKey, type PublishedKey, type SigningKey } from '../tokens/keys.js';
import { durationToSeconds } from '../config/duration.js';
import { ConfigError, formatPath } from '../config/errors.js';
import { interpolateSecrets } from '../config/interpolate.js';
import { configSchema, type RawConfig, type StaticUser } from '../config/schema.js';
import { federationProblems } from '../config/federation.js';
import { federationPatternProblems } from '../federation/policy-problems.js';
import { restrictionPatternProblem } from '../policy/pattern.js';
import { readJwksFile } from '../federation/issuer-keys.js';
import { namespaceProblems } from '../model/account-names.js';
import { namespaceSources } from '../config/namespace.js';
import { parseStandardCidr } from '../util/ip.js';


export interface Config {
  raw: RawConfig;
  baseDir: string;
  /** Every other duration of the file, in seconds, so that nothing downstream converts units. */
  seconds: {
    patsDefaultTTL: number;
    patsMaxTTL: number;
    continuousAccessTTL: number;
    continuousAccessGrace: number;
    limitsWindow: number;
    limitsLockout: number;
    webSessionTTL: number;
  };
  server: { host: string | undefined; port: number; publicURL: string | undefined; tls: { key: string; cert: string } | null; trustProxy: boolean; trustedProxies: string[] | undefined; realIPHeader: string | undefined };
  token: {
    issuer: string;
    ttlSeconds: number;
    /** null: any service accepted (docker_auth behaviour when no list is configured). */
    services: ReadonlySet<string> | null;
    kidFormat: 'libtrust' | 'thumbprint';
    /** null: generate one at start into generatedKeyDir. */
    signingKey: SigningKey | null;
    publishedKeys: PublishedKey[];
    generatedKeyDir: string;
    generatedKeyAlg: 'ES256' | 'RS256' | 'EdDSA';
    refreshTTLSeconds: number;
    path: string;
  };
  users: Map<string, StaticUser>;
  acl: Acl;
}

const BCRYPT = /^\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}$/;

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

export function parseAddr(addr: string): { host: string | undefined; port: number } {
  const m = /^(.*):(\d+)$/.exec(addr);
  if (!m) throw new Error(`not an address: ${addr} (expected host:port or :port)`);
  const port = Number(m[2]);
  // Checked here rather than at listen(): check-config must catch it, and listen() throws a stack.
  if (port > 65535) throw new Error(`port ${m[2]} is out of range (0..65535)`);
  const bracketed = /^\[(.*)\]$/.exec(m[1]!);
  const host = bracketed ? bracketed[1]! : m[1]!;
  // An IP literal, or a name to resolve; digits and dots only must be a whole IPv4 address.
  const valid = host === '' || (bracketed ? isIP(host) === 6 : isIP(host) !== 0 || (HOSTNAME.test(host) && !/^[\d.]+$/.test(host)));
  if (!valid) throw new Error(`not an address: ${addr} (host must be an IP address, [IPv6] or a host name)`);
  return { host: host || undefined, port };
}

// Actions Berth grants: the registry's repository actions, and "*" (also what registry:catalog needs).
const ACTIONS = new Set(['pull', 'push', 'delete', '*']);
const ACL_PLACEHOLDER = /^\$\{(account|name|type|service|labels:[^}]+)\}$/;

/** `${…}` in an ACL pattern that the ACL does not fill in: it would only ever match its own text. */
function unknownPlaceholders(rule: RawConfig['acl'][number], i: number, isUnresolved: (where: string) => boolean): string[] {
  const fields: [string, string][] = [];
  for (const f of ['account', 'type', 'name', 'service'] as const) if (rule.match[f] !== undefined) fields.push([`acl[${i}].match.${f}`, rule.match[f]]);
  for (const [label, spec] of Object.entries(rule.match.labels ?? {})) {
    const list = Array.isArray(spec) ? spec : [spec];
    list.forEach((p, j) => fields.push([`${formatPath(['acl', i, 'match', 'labels', label])}${Array.isArray(spec) ? `[${j}]` : ''}`, p]));
  }
  const out: string[] = [];
  for (const [where, pattern] of fields) {
    if (isUnresolved(where)) continue;
    for (const m of pattern.matchAll(/\$\{[^}]*\}?/g)) {
      if (!ACL_PLACEHOLDER.test(m[0])) out.push(`${where}: unknown placeholder ${m[0]} (the ACL knows \${account}, \${name}, \${type}, \${service} and \${labels:KEY})`);
    }
  }
  return out;
}

function readRelative(baseDir: string, path: string, where: string, problems: string[]): string | undefined {
  const full = resolve(baseDir, path);
  try {
    return readFileSync(full, 'utf8');
  } catch (e) {
    problems.push(`${where}: cannot read ${full}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return undefined;
  }
}

function normaliseLabels(labels: Record<string, string | string[]> | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(labels ?? {})) out[k] = Array.isArray(v) ? v : [v];
  return out;
}

/** The section as the schema reads it, or undefined when it is invalid (its issues are reported once, by the whole-document parse). */
function section<K extends keyof RawConfig>(doc: unknown, key: K): RawConfig[K] | undefined {
  const value = doc && typeof doc === 'object' && !Array.isArray(doc) ? (doc as Record<string, unknown>)[key] : undefined;
  const r = (configSchema.shape[key] as unknown as z.ZodType<RawConfig[K]>).safeParse(value);
  return r.success ? r.data : undefined;
}

/**
 * Validates a parsed YAML document and resolves files; every problem names its YAML path. Sections
 * that are valid on their own are checked further even when another section is not, so that one run
 * of `berth check-config` lists every problem.
 */
export async function buildConfig(doc: unknown, baseDir: string): Promise<Config> {
  const problems: string[] = [];
  const { value: interpolated, unresolved } = interpolateSecrets(doc ?? {}, problems, baseDir);
  // A value whose ${env:}/${file:} failed is already reported; what the schema thinks of the
  // stand-in would only be noise.
  const isUnresolved = (where: string) => [...unresolved].some((u) => where === u || where.startsWith(`${u}.`) || where.startsWith(`${u}[`));
  const parsed = configSchema.safeParse(interpolated);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const k of issue.keys) problems.push(`${formatPath([...issue.path, k])}: unknown key`);
      } else if (!isUnresolved(formatPath(issue.path))) problems.push(`${formatPath(issue.path)}: ${issue.message}`);
    }
  }
  const usersSection = section(interpolated, 'users');
  const aclSection = section(interpolated, 'acl');
  const tokenSection = section(interpolated, 'token');
  const serverSection = section(interpolated, 'server');
  const connectorsSection = section(interpolated, 'connectors');

  const users = new Map<string, StaticUser>();
  for (const [name, u] of Object.entries(usersSection ?? {})) {
    const where = formatPath(['users', name]);
    if (isUnresolved(`${where}.password`) || isUnresolved(`${where}.passwordFile`)) continue;
    let hash = u.password ?? (u.passwordFile !== undefined ? readRelative(baseDir, u.passwordFile, `${where}.passwordFile`, problems)?.trim() : undefined);
    if (hash === undefined || hash === '') {
      if (name !== '' && !(u.passwordFile !== undefined && hash === undefined)) problems.push(`${where}: a password (bcrypt hash) is required; only the anonymous user '' may have none`);
      hash = undefined;
    } else if (!BCRYPT.test(hash)) {
      problems.push(`${where}.${u.password !== undefined ? 'password' : 'passwordFile'}: not a bcrypt hash (make one with: berth hash-password)`);
    }
    users.set(name, { hash: hash ?? null, labels: normaliseLabels(u.labels) });
  }

  let acl: Acl | undefined;
  if (aclSection) {
    const before = problems.length;
    aclSection.forEach((rule, i) => {
      for (const a of rule.actions) if (!ACTIONS.has(a)) problems.push(`acl[${i}].actions: invalid action ${JSON.stringify(a)}`);
      problems.push(...unknownPlaceholders(rule, i, isUnresolved));
      try {
        compileRule(rule, i);
      } catch (e) {
        if (e instanceof AclCompileError) problems.push(e.message);
        else throw e;
      }
    });
    if (problems.length === before) acl = new Acl(aclSection);
  }

  let signingKey: SigningKey | null = null;
  const publishedKeys: PublishedKey[] = [];
  const token = tokenSection;
  if (token && (token.key !== undefined || token.certificate !== undefined)) {
    if (token.key === undefined) problems.push('token.key: required when token.certificate is set');
    else if (!isUnresolved('token.key') && !isUnresolved('token.certificate')) {
      const keyPem = readRelative(baseDir, token.key, 'token.key', problems);
      const certPem = token.certificate !== undefined ? readRelative(baseDir, token.certificate, 'token.certificate', problems) : undefined;
      if (keyPem !== undefined && (token.certificate === undefined || certPem !== undefined)) {
        try {
          signingKey = await loadSigningKey(keyPem, certPem);
        } catch (e) {
          problems.push(`token.key: ${(e as Error).message}`);
        }
      }
    }
  }
  for (const [i, pk] of (token?.publishedKeys ?? []).entries()) {
    const pem = readRelative(baseDir, (pk.certificate ?? pk.key)!, `token.publishedKeys[${i}]`, problems);
    if (pem === undefined) continue;
    try {
      publishedKeys.push(await loadPublishedKey(pem));
    } catch (e) {
      problems.push(`token.publishedKeys[${i}]: ${(e as Error).message}`);
    }
  }

  let addr = { host: undefined as string | undefined, port: 5001 };
  let tls: Config['server']['tls'] = null;
  const server = serverSection;
  if (server && !isUnresolved('server.addr')) {
    try {
      addr = parseAddr(server.addr);
    } catch (e) {
      problems.push(`server.addr: ${(e as Error).message}`);
    }
  }
  if (server && (server.certificate !== undefined || server.key !== undefined)) {
    if (server.certificate === undefined || server.key === undefined) problems.push('server: certificate and key go together');
    else {
      const cert = readRelative(baseDir, server.certificate, 'server.certificate', problems);
      const key = readRelative(baseDir, server.key, 'server.key', problems);
      if (cert !== undefined && key !== undefined) {
        // Caught here, with the YAML path, rather than as an OpenSSL stack trace at listen().
        try {
          createSecureContext({ cert, key });
          tls = { cert, key };
        } catch (e) {
          problems.push(`server.certificate, server.key: not a usable certificate and private key pair (${(e as Error).message})`);
        }
      }
    }
  }
  for (const [i, spec] of (server?.trustedProxies ?? []).entries()) {
    try {
      parseStandardCidr(spec.trim());
    } catch (e) {
      problems.push(`server.trustedProxies[${i}]: ${(e as Error).message}`);
    }
  }
  const ids = new Set<string>();
  (connectorsSection ?? []).forEach((c, i) => {
    if (ids.has(c.id)) problems.push(`connectors[${i}].id: duplicate id ${c.id}`);
    ids.add(c.id);
  });
  const federationSection = section(interpolated, 'federation');
  problems.push(...federationProblems(federationSection ?? []), ...federationPatternProblems(federationSection ?? []));
  // Restrictions take globs only, whoever writes them (see restrictionPatternProblem).
  (section(interpolated, 'robots') ?? []).forEach((r, i) =>
    r.repositories.forEach((pattern, j) => {
      const problem = restrictionPatternProblem(pattern);
      if (problem) problems.push(`${formatPath(['robots', i, 'repositories', j])}: ${problem}`);
    }),
  );
  (federationSection ?? []).forEach((f, i) => {
    if (f.jwksFile === undefined) return;
    try {
      readJwksFile(resolve(baseDir, f.jwksFile));
    } catch (e) {
      problems.push(`federation[${i}].jwksFile: ${(e as Error).message}`);
    }
  });
  // One account namespace: refuse a file in which two sources could produce the same account name.
  if (connectorsSection && federationSection) problems.push(...namespaceProblems(namespaceSources({ connectors: connectorsSection, federation: federationSection }, users.keys())));
  problems.push(...githubGroupProblems(connectorsSection ?? [], aclSection ?? [], section(interpolated, 'admin')));
  // Replicas (and a restarted process) must read each other's sealed upstream tokens and agree on
  // failure fingerprints: with Redis a per-process random key would silently break both.
  if (section(interpolated, 'store')?.type === 'redis' && !section(interpolated, 'secrets')?.encryptionKey && !isUnresolved('secrets.encryptionKey')) {
    problems.push('secrets.encryptionKey: required with the redis store (32+ random characters shared by every replica, e.g. "${file:/run/secrets/berth-key}")');
  }

  if (problems.length || !parsed.success) throw new ConfigError(problems.length ? problems : ['(root): invalid configuration']);
  const raw = parsed.data;

  return {
    raw,
    baseDir,
    seconds: {
      patsDefaultTTL: durationToSeconds(raw.pats.defaultTTL),
      patsMaxTTL: durationToSeconds(raw.pats.maxTTL),
      continuousAccessTTL: durationToSeconds(raw.continuousAccess.ttl),
      continuousAccessGrace: durationToSeconds(raw.continuousAccess.grace),
      limitsWindow: durationToSeconds(raw.limits.window),
      limitsLockout: durationToSeconds(raw.limits.lockout),
      webSessionTTL: durationToSeconds(raw.web.sessionTTL),
    },
    server: { ...addr, publicURL: raw.server.publicURL?.replace(/\/$/, ''), tls, trustProxy: raw.server.trustProxy, trustedProxies: raw.server.trustedProxies, realIPHeader: raw.server.realIPHeader },
    token: {
      issuer: raw.token.issuer,
      ttlSeconds: durationToSeconds(raw.token.expiration),
      services: raw.token.services ? new Set(raw.token.services) : null,
      kidFormat: raw.token.kid,
      signingKey,
      publishedKeys,
      generatedKeyDir: resolve(baseDir, raw.token.generatedKeyDir),
      generatedKeyAlg: raw.token.generatedKeyAlg,
      refreshTTLSeconds: durationToSeconds(raw.token.refreshTTL),
      path: raw.token.path.replace(/\/$/, '') || '/auth',
    },
    users,
    acl: acl!,
  };
}

export async function loadConfigText(text: string, baseDir: string): Promise<Config> {
  let doc: unknown;
  try {
    doc = yaml.load(text, { schema: yaml.CORE_SCHEMA });
  } catch (e) {
    throw new ConfigError([`YAML: ${(e as Error).message.split('\n')[0]}`]);
  }
  return buildConfig(doc, baseDir);
}

export async function loadConfigFile(path: string): Promise<Config> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`]);
  }
  return loadConfigText(text, dirname(resolve(path)));
}

/**
 * Without allowedOrgs anyone can create a GitHub organization named like a group the rules use, and
 * be a member of it: groups from such a connector must not decide access.
 */
function githubGroupProblems(connectors: RawConfig['connectors'], acl: RawConfig['acl'], admin: RawConfig['admin'] | undefined): string[] {
  const groupsUsed = acl.some((r) => r.match.labels?.groups !== undefined || /\$\{labels:groups\}/.test(`${r.match.name ?? ''}${r.match.account ?? ''}`)) || (admin?.groups.length ?? 0) > 0;
  if (!groupsUsed) return [];
  return connectors.flatMap((c, i) =>
    c.type === 'github' && !c.allowedOrgs?.length
      ? [`connectors[${i}].allowedOrgs: required when the ACL or admin.groups use groups: without it anyone can create a GitHub organization named like one of your groups and receive its rights`]
      : [],
  );
}
