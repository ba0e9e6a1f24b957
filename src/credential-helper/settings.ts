import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { HelperError } from './errors.js';
import { isLoopbackRegistry, isLoopbackURL, parseBerthURL, parseRegistryList, registryKey } from './server-url.js';
import { NativeSecretStore, STORE_NAME, type SecretStore } from './secret-store.js';

export interface RenewPolicy {
  /** Renew when less than this share of the token's lifetime is left. */
  remainingFraction: number;
  /** Also renew when fewer than this many days are left. */
  remainingDays: number | null;
}

export interface HelperSettings {
  dir: string;
  /** Registry key → Berth base URL. */
  registries: Map<string, string>;
  /** helper.json itself (named in hints). */
  configFile: string;
  /** BERTH_URL: the Berth for the registries in `defaultRegistries` (and loopback ones, see berthFor). */
  defaultBerth: string | null;
  /** BERTH_REGISTRIES: the registry keys BERTH_URL serves. */
  defaultRegistries: Set<string>;
  renew: RenewPolicy;
  /** False with BERTH_NO_LOGIN=1 (CI): a missing token is "not found" instead of a browser sign-in. */
  interactiveLogin: boolean;
  /** helper.json `secretStore`: keep secrets in that credential helper instead of credentials.json. */
  secretStore: SecretStore | null;
  /** Any store by name: an entry written under an earlier `secretStore` is still read from there. */
  storeNamed: (name: string) => SecretStore;
}

export const DEFAULT_RENEW: RenewPolicy = { remainingFraction: 0.25, remainingDays: null };

/** $XDG_CONFIG_HOME/berth, else ~/.config/berth (a relative XDG_CONFIG_HOME is ignored, as the spec says). */
export function configDir(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'berth');
  return join(env.HOME || homedir(), '.config', 'berth');
}

function fail(file: string, why: string): never {
  throw new HelperError(`${file}: ${why}`);
}

function parseRenew(file: string, v: unknown): RenewPolicy {
  if (v === undefined) return DEFAULT_RENEW;
  if (!v || typeof v !== 'object' || Array.isArray(v)) fail(file, '"renew" must be an object like {"remainingFraction": 0.25, "remainingDays": 7}');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'remainingFraction' && k !== 'remainingDays') fail(file, `unknown key "renew.${k}"`);
  const fraction = o.remainingFraction ?? DEFAULT_RENEW.remainingFraction;
  if (typeof fraction !== 'number' || !(fraction >= 0 && fraction < 1)) fail(file, '"renew.remainingFraction" must be a number from 0 up to (not including) 1');
  const days = o.remainingDays ?? null;
  if (days !== null && (typeof days !== 'number' || !(days >= 0))) fail(file, '"renew.remainingDays" must be a number of days');
  return { remainingFraction: fraction, remainingDays: days };
}

/** Reads helper.json (optional) and the environment; a malformed file is an error, not ignored. */
export function loadSettings(env: NodeJS.ProcessEnv): HelperSettings {
  const dir = configDir(env);
  const file = join(dir, 'helper.json');
  let raw: string | null = null;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') fail(file, (e as Error).message);
  }
  const registries = new Map<string, string>();
  let renew = DEFAULT_RENEW;
  let secretStoreName: string | null = null;
  if (raw !== null) {
    let doc: unknown;
    try {
      doc = JSON.parse(raw);
    } catch (e) {
      fail(file, `not valid JSON (${(e as Error).message})`);
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) fail(file, 'must hold a JSON object');
    const o = doc as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['registries', 'renew', 'secretStore'].includes(k)) fail(file, `unknown key "${k}" (expected "registries", "renew", "secretStore")`);
    if (o.secretStore !== undefined && o.secretStore !== null) {
      if (typeof o.secretStore !== 'string' || !STORE_NAME.test(o.secretStore) || o.secretStore === 'berth') fail(file, '"secretStore" must name another docker credential helper, such as "osxkeychain", "wincred", "secretservice" or "pass"');
      secretStoreName = o.secretStore;
    }
    const regs = o.registries ?? {};
    if (!regs || typeof regs !== 'object' || Array.isArray(regs)) fail(file, '"registries" must map registry hosts to Berth URLs');
    for (const [host, url] of Object.entries(regs as Record<string, unknown>)) {
      if (typeof url !== 'string') fail(file, `"registries.${host}" must be a URL string`);
      try {
        registries.set(registryKey(host), parseBerthURL(url, `registries.${host}`));
      } catch (e) {
        fail(file, (e as Error).message);
      }
    }
    renew = parseRenew(file, o.renew);
  }
  let defaultBerth: string | null = null;
  let defaultRegistries = new Set<string>();
  try {
    if (env.BERTH_URL) defaultBerth = parseBerthURL(env.BERTH_URL, 'BERTH_URL');
    if (env.BERTH_REGISTRIES) defaultRegistries = parseRegistryList(env.BERTH_REGISTRIES, 'BERTH_REGISTRIES');
  } catch (e) {
    throw new HelperError((e as Error).message);
  }
  const storeNamed = (name: string) => new NativeSecretStore(name, env);
  return { dir, configFile: file, registries, defaultBerth, defaultRegistries, renew, interactiveLogin: env.BERTH_NO_LOGIN !== '1', secretStore: secretStoreName ? storeNamed(secretStoreName) : null, storeNamed };
}

/**
 * The Berth that hands out a PAT for registry `key`, or null. BERTH_URL alone does not serve every
 * registry docker asks about: with `credsStore: "berth"` docker asks for any host an image names
 * (a Dockerfile's FROM, say), and each would get a sign-in and then a Berth PAT as its password.
 * So BERTH_URL serves the registries BERTH_REGISTRIES names, and, when BERTH_URL is itself on this
 * machine (the demo), registries on this machine; helper.json entries name their own Berth.
 */
export function berthFor(settings: HelperSettings, key: string): string | null {
  const listed = settings.registries.get(key);
  if (listed) return listed;
  const berth = settings.defaultBerth;
  if (!berth) return null;
  if (settings.defaultRegistries.has(key)) return berth;
  return isLoopbackURL(berth) && isLoopbackRegistry(key) ? berth : null;
}

/** One line for stderr saying why `key` gets "not found", and how to change that. */
export function notConfiguredHint(settings: HelperSettings, key: string): string {
  const where = settings.defaultBerth
    ? `add it to "registries" in ${settings.configFile}, or to BERTH_REGISTRIES (BERTH_URL serves only the registries listed there${isLoopbackURL(settings.defaultBerth) ? ' and those on this machine' : ''})`
    : `add it to "registries" in ${settings.configFile} (or set BERTH_URL and BERTH_REGISTRIES)`;
  return `docker-credential-berth: no Berth is configured for ${key}; ${where}\n`;
}
