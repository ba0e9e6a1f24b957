#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { ConfigError } from '../config/errors.js';
import type { KeygenAlg } from '../tokens/keygen.js';
import { ScopeError } from '../policy/scope.js';
import { CliError, parse, systemErrorText, UsageError } from './args.js';
import { explain } from './acl-explain.js';
import { USAGE, USAGES, wantsHelp, type Command } from './usage.js';

// Heavy modules are imported by the commands that need them, so that e.g. hash-password in a loop
// does not pay for the x509 and schema libraries on every start.
const loadConfig = async () => (await import('../app/load-config.js')).loadConfigFile;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  // Before any parsing or side effect: `check-config --help` must not read a file named --help,
  // `robot secret --help` must not mint a secret, `hash-password -h` must not wait for stdin.
  if (cmd !== undefined && Object.hasOwn(USAGES, cmd) && wantsHelp(rest)) {
    process.stdout.write(USAGES[cmd as Command] + '\n');
    return 0;
  }
  switch (cmd) {
    case 'serve': {
      const { values } = parse(rest, { config: { type: 'string', short: 'c' }, demo: { type: 'boolean' }, 'watch-config': { type: 'boolean' } });
      // Loaded only here: the server stack takes most of a second to import, which every other
      // command (hash-password, check-config, scripts calling them in loops) would pay for nothing.
      const { serve } = await import('./serve.js');
      return serve({ configPath: values.config ?? process.env.BERTH_CONFIG, demo: values.demo ?? false, watch: values['watch-config'] ?? false });
    }
    case 'keygen': {
      const { values, positionals } = parse(rest, { out: { type: 'string' }, alg: { type: 'string' }, force: { type: 'boolean' } });
      if (!values.out) throw new UsageError('keygen needs --out DIR');
      if (positionals.length) throw new UsageError(`keygen takes no arguments besides its options, got ${positionals[0]}`);
      const alg = (values.alg ?? 'ES256') as KeygenAlg;
      if (!['ES256', 'RS256', 'EdDSA'].includes(alg)) throw new UsageError('--alg must be ES256, RS256 or EdDSA');
      const { writeKeyPair } = await import('../tokens/keygen.js');
      const { keyPath, certPath } = await writeKeyPair(resolve(values.out), alg, { force: values.force ?? false });
      process.stdout.write(`wrote ${keyPath} (private, mode 600)\nwrote ${certPath} (give it to the registry as auth.token.rootcertbundle)\n`);
      if (alg === 'EdDSA') process.stderr.write('note: registry 2.x cannot verify EdDSA tokens; use ES256 or RS256 for it\n');
      return 0;
    }
    case 'hash-password': {
      const { values, positionals } = parse(rest, { cost: { type: 'string' } });
      if (positionals.length) throw new UsageError('hash-password reads the password from stdin, not from the command line');
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
      const { positionals } = parse(rest, {});
      if (positionals.length > 1) throw new UsageError('check-config takes one FILE');
      const file = positionals[0] ?? process.env.BERTH_CONFIG;
      if (!file) throw new UsageError('check-config needs a FILE');
      const config = await (await loadConfig())(file);
      const { configWarnings } = await import('../app/config-warnings.js');
      for (const w of configWarnings(config)) process.stderr.write(`${file}: warning: ${w}\n`);
      process.stdout.write(`${file}: ok\n`);
      return 0;
    }
    case 'acl': {
      if (rest[0] !== 'explain') throw new UsageError(USAGES.acl);
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
      if (values.ip !== undefined && isIP(values.ip) === 0) throw new UsageError(`--ip ${JSON.stringify(values.ip)} is not an IP address`);
      const config = await (await loadConfig())(file);
      const user = config.users.get(values.account);
      for (const [k, v] of Object.entries(user?.labels ?? {})) (labels[k] ??= []).push(...v);
      process.stdout.write(explain(config, values.account, labels, positionals, values.service ?? '', values.ip) + '\n');
      return 0;
    }
    case 'robot':
      if (rest.length === 0) throw new UsageError(USAGES.robot);
      return (await import('./robot.js')).robotCommand(rest, (t) => process.stdout.write(t));
    case 'pull-secret':
      return (await import('./pull-secret.js')).pullSecretCommand(rest, (t) => process.stdout.write(t));
    case 'oci-image': {
      const { values, positionals } = parse(rest, { out: { type: 'string', short: 'o' }, tag: { type: 'string', short: 't' } });
      if (!values.out) throw new UsageError('oci-image needs --out DIR');
      const { readImageFiles, writeOciImage } = await import('./oci-image.js');
      const tag = values.tag ?? 'latest';
      const { manifestDigest } = writeOciImage(resolve(values.out), tag, readImageFiles(positionals));
      process.stdout.write(`wrote oci:${values.out}:${tag} (${manifestDigest})\npush it: skopeo copy oci:${values.out}:${tag} docker://REGISTRY/REPOSITORY:${tag}\n`);
      return 0;
    }
    case 'version':
    case '--version':
      process.stdout.write(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version + '\n');
      return 0;
    case 'help':
      if (rest[0] && Object.hasOwn(USAGES, rest[0])) {
        process.stdout.write(USAGES[rest[0] as Command] + '\n');
        return 0;
      }
    // falls through
    case undefined:
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${cmd}\n${USAGE}`);
  }
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (e: unknown) => {
    const cmd = argv[0] && Object.hasOwn(USAGES, argv[0]) ? argv[0] : null;
    if (e instanceof ConfigError) process.stderr.write(`configuration error: ${e.message}\n`);
    else if (e instanceof UsageError) process.stderr.write(`${e.message}\n${cmd && !e.message.startsWith('usage:') ? `(berth ${cmd} --help shows the usage)\n` : ''}`);
    // KeygenError by name: importing it would load the x509 library on every failure.
    else if (e instanceof ScopeError || e instanceof CliError || (e instanceof Error && e.name === 'KeygenError')) process.stderr.write(`berth: ${e.message}\n`);
    else {
      // Ordinary failures (a port in use, a file that cannot be written) get one line; only a
      // bug gets a stack trace.
      const text = systemErrorText(e);
      process.stderr.write(`berth: ${text ?? (e as Error).stack ?? e}\n`);
    }
    // exit() rather than exitCode: a half-started server (Berth listening, the demo provider's
    // port taken) would otherwise keep the process alive. stderr is synchronous for files and pipes.
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
