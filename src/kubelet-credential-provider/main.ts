#!/usr/bin/env node
import { UsageError } from '../cli/args.js';
import { answer, parseSettings } from './plugin.js';
import { MAX_REQUEST_BYTES, RequestError } from './protocol.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_REQUEST_BYTES) throw new RequestError('the request is larger than 1 MiB');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// kubelet logs stderr and treats any non-zero exit as "no credentials": stdout carries either
// one complete response or nothing, never a partial or malformed one.
let code = 0;
let out = '';
try {
  const settings = parseSettings(process.argv.slice(2));
  out = `${JSON.stringify(answer(await readStdin(), settings, Date.now() / 1000))}\n`;
} catch (e) {
  code = e instanceof UsageError ? 2 : 1;
  const message = e instanceof RequestError || e instanceof UsageError ? e.message : `internal error: ${(e as Error).message}`;
  process.stderr.write(`berth-kubelet-credential-provider: ${message}\n`);
}
process.stdout.write(out, () => process.exit(code));
