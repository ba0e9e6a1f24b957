#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { runProtocol } from './protocol.js';
import { forTerminal } from './terminal.js';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    // Docker sends a server URL or one small JSON object; anything bigger is not for us.
    if (size > 1024 * 1024) throw new Error('stdin too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const result = await runProtocol(process.argv.slice(2), {
  env: process.env,
  version: packageVersion(),
  readStdin,
  // Whatever a message was built from, no control sequence reaches the terminal (see terminal.ts).
  tell: (message) => process.stderr.write(forTerminal(message)),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  now: () => Date.now(),
});
// Exit only once stdout is flushed: docker reads it through a pipe.
process.stdout.write(result.stdout, () => process.exit(result.exitCode));
