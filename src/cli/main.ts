#!/usr/bin/env node
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../config/errors.js';
import type { KeygenAlg } from '../tokens/keygen.js';
import { ScopeError } from '../policy/scope.js';
import { parse, UsageError } from './args.js';
import { explain } from './acl-explain.js';
import { ROBOT_USAGE } from './robot.js';

const USAGE = `usage: berth <command>
  serve [--config FILE] [--demo] [--watch-config]
                                        run the server (config also from BERTH_CONFIG); SIGHUP or,
                                        with --watch-config, saving the file reloads it
  keygen --out DIR [--alg ES256|RS256|EdDSA]
                                        write key.pem + cert.pem for token signing
  hash-password [--cost N]              bcrypt a password read from stdin (htpasswd -nB replacement)
  check-config FILE                     validate a config file; exit 1 with every problem
  acl explain --config FILE --account A [--label k=v]... [--service S] [--ip IP] SCOPE...
                                        show which ACL rule decides each scope
  robot list|create|rotate|disable|enable|delete|secret ...
                                        manage robot accounts through a running server (admins)
  pull-secret --robot NAME --registry HOST [--namespace NS] ...
                                        rotate a robot and print a Kubernetes image pull Secret`;

// Heavy modules are imported by the commands that need them, so that e.g. hash-password in a loop
// does not pay for the x509 and schema libraries on every start.
const loadConfig = async () => (await import('../config/load.js')).loadConfigFile;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve': {
      const { values } = parse(rest, { config: { type: 'string', short: 'c' }, demo: { type: 'boolean' }, 'watch-config': { type: 'boolean' } });
      // Loaded only here: the server stack takes most of a second to import, which every other
      // command (hash-password, check-config, scripts calling them in loops) would pay for nothing.
      const { serve } = await import('./serve.js');
      return serve({ configPath: values.config ?? process.env.BERTH_CONFIG, demo: values.demo ?? false, watch: values['watch-config'] ?? false });
    }
    case 'keygen': {
      const { values } = parse(rest, { out: { type: 'string' }, alg: { type: 'string' } });
      if (!values.out) throw new UsageError('keygen needs --out DIR');
      const alg = (values.alg ?? 'ES256') as KeygenAlg;
      if (!['ES256', 'RS256', 'EdDSA'].includes(alg)) throw new UsageError('--alg must be ES256, RS256 or EdDSA');
      // A key.pem that already exists keeps its mode when overwritten: tighten it before the new
      // private key is written into it, not after.
      const existing = join(resolve(values.out), 'key.pem');
      if (existsSync(existing)) chmodSync(existing, 0o600);
      const { writeKeyPair } = await import('../tokens/keygen.js');
      const { keyPath, certPath } = await writeKeyPair(resolve(values.out), alg);
      process.stdout.write(`wrote ${keyPath} (private, mode 600)\nwrote ${certPath} (give it to the registry as auth.token.rootcertbundle)\n`);
      if (alg === 'EdDSA') process.stderr.write('note: registry 2.x cannot verify EdDSA tokens; use ES256 or RS256 for it\n');
      return 0;
    }
    case 'hash-password': {
      const { values } = parse(rest, { cost: { type: 'string' } });
      const cost = Number(values.cost ?? 10);
      if (!Number.isInteger(cost) || cost < 4 || cost > 15) throw new UsageError('--cost must be 4..15');
      if (process.stdin.isTTY) process.stderr.write('password (input is visible; end with Enter, then Ctrl-D): ');
      const pw = (await readStdin()).replace(/\r?\n$/, '');
      if (!pw) throw new UsageError('empty password');
      const { hash } = await import('@node-rs/bcrypt');
      process.stdout.write(`${await hash(pw, cost)}\n`);
      return 0;
    }
    case 'check-config': {
      const file = rest[0] ?? process.env.BERTH_CONFIG;
      if (!file) throw new UsageError('check-config needs a FILE');
      const config = await (await loadConfig())(file);
      const { configWarnings } = await import('../config/warnings.js');
      for (const w of configWarnings(config)) process.stderr.write(`${file}: warning: ${w}\n`);
      process.stdout.write(`${file}: ok\n`);
      return 0;
    }
    case 'acl': {
      if (rest[0] !== 'explain') throw new UsageError('usage: berth acl explain --config FILE --account A SCOPE...');
      const { values, positionals } = parse(rest.slice(1), {
        config: { type: 'string', short: 'c' },
        account: { type: 'string' },
        label: { type: 'string', multiple: true },
        service: { type: 'string' },
        ip: { type: 'string' },
      });
      const file = values.config ?? process.env.BERTH_CONFIG;
      if (!file) throw new UsageError('acl explain needs --config FILE');
      if (values.account === undefined) throw new UsageError('acl explain needs --account (use "" for anonymous)');
      if (positionals.length === 0) throw new UsageError('acl explain needs at least one SCOPE, e.g. repository:team/app:pull,push');
      const labels: Record<string, string[]> = {};
      for (const l of values.label ?? []) {
        const eq = l.indexOf('=');
        if (eq <= 0) throw new UsageError(`--label wants key=value, got ${l}`);
        (labels[l.slice(0, eq)] ??= []).push(...l.slice(eq + 1).split(',').filter(Boolean));
      }
      const config = await (await loadConfig())(file);
      const user = config.users.get(values.account);
      for (const [k, v] of Object.entries(user?.labels ?? {})) (labels[k] ??= []).push(...v);
      process.stdout.write(explain(config, values.account, labels, positionals, values.service ?? '', values.ip) + '\n');
      return 0;
    }
    case 'robot':
      if (rest.length === 0) throw new UsageError(ROBOT_USAGE);
      return (await import('./robot.js')).robotCommand(rest, (t) => process.stdout.write(t));
    case 'pull-secret':
      return (await import('./pull-secret.js')).pullSecretCommand(rest, (t) => process.stdout.write(t));
    case 'version':
    case '--version':
      process.stdout.write(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version + '\n');
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${cmd}\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof ConfigError) process.stderr.write(`configuration error: ${e.message}\n`);
    else if (e instanceof UsageError || e instanceof ScopeError) process.stderr.write(`${e.message}\n`);
    else process.stderr.write(`berth: ${(e as Error).stack ?? e}\n`);
    process.exitCode = e instanceof UsageError ? 2 : 1;
  },
);
