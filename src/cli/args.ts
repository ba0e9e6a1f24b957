/** Minimal flag parsing over node:util.parseArgs, with errors a person can act on. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Wrong use of the command line: one line on stderr, exit 2. */
export class UsageError extends Error {}

/** An ordinary failure (a file in the way, a port in use): one line on stderr, exit 1, no stack. */
export class CliError extends Error {}

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** What a Node system error (ENOENT, EACCES, EADDRINUSE…) says, without its stack; null for other errors. */
export function systemErrorText(e: unknown): string | null {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
  if (!(e instanceof Error) || typeof err.code !== 'string' || !/^E[A-Z]+$/.test(err.code)) return null;
  if (err.syscall === 'listen' || err.syscall === 'bind') {
    const where = err.address !== undefined ? `${err.address.includes(':') ? `[${err.address}]` : err.address}:${err.port}` : 'the configured address';
    const why = err.code === 'EADDRINUSE' ? 'the address is already in use (another berth, or another program?)' : err.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : err.code === 'EADDRNOTAVAIL' ? 'this machine has no such address' : err.code;
    return `cannot listen on ${where}: ${why}`;
  }
  if (err.syscall === 'getaddrinfo') {
    const host = (err as { hostname?: string }).hostname ?? 'the configured host';
    return `cannot resolve ${host}: ${err.code === 'ENOTFOUND' ? 'no such host' : err.code}`;
  }
  return err.message;
}
