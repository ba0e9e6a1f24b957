import { Commands } from './commands.js';
import type { LoginIO } from './device-login.js';
import { HelperError, MISSING_SERVER_URL_MESSAGE, MISSING_USERNAME_MESSAGE } from './errors.js';
import { loadSettings } from './settings.js';
import { printable } from './terminal.js';

export const HELPER_NAME = 'docker-credential-berth';
export const USAGE = `Usage: ${HELPER_NAME} <store|get|erase|list|version>`;

export interface ProtocolIO extends LoginIO {
  readStdin(): Promise<string>;
  env: NodeJS.ProcessEnv;
  version: string;
}

export interface ProtocolResult {
  stdout: string;
  exitCode: 0 | 1;
}

const ok = (stdout = ''): ProtocolResult => ({ stdout, exitCode: 0 });

/**
 * docker's credential-helper protocol: one action per run, input on stdin, JSON answers on stdout,
 * and on failure the message as plain text on stdout with exit status 1 (what docker reads).
 */
export async function runProtocol(args: string[], io: ProtocolIO): Promise<ProtocolResult> {
  try {
    if (args.length !== 1) throw new HelperError(USAGE);
    const action = args[0]!;
    switch (action) {
      case 'version':
        return ok(`${HELPER_NAME} (berth) ${io.version}\n`);
      case 'list':
        return ok(`${JSON.stringify(await new Commands(loadSettings(io.env), io).list())}\n`);
      case 'get': {
        const serverURL = (await io.readStdin()).trim();
        if (!serverURL) throw new HelperError(MISSING_SERVER_URL_MESSAGE);
        const c = await new Commands(loadSettings(io.env), io).get(serverURL);
        return ok(`${JSON.stringify({ ServerURL: serverURL, Username: c.username, Secret: c.secret })}\n`);
      }
      case 'store': {
        const raw = await io.readStdin();
        let doc: unknown;
        try {
          doc = JSON.parse(raw);
        } catch (e) {
          throw new HelperError(`invalid credentials JSON on stdin: ${(e as Error).message}`);
        }
        if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new HelperError('invalid credentials JSON on stdin: expected {"ServerURL","Username","Secret"}');
        const { ServerURL, Username, Secret } = doc as Record<string, unknown>;
        if (typeof ServerURL !== 'string' || ServerURL.trim() === '') throw new HelperError(MISSING_SERVER_URL_MESSAGE);
        if (typeof Username !== 'string' || Username === '') throw new HelperError(MISSING_USERNAME_MESSAGE);
        if (Secret !== undefined && typeof Secret !== 'string') throw new HelperError('invalid credentials JSON on stdin: Secret must be a string');
        await new Commands(loadSettings(io.env), io).store(ServerURL, Username, Secret ?? '');
        return ok();
      }
      case 'erase': {
        const serverURL = (await io.readStdin()).trim();
        if (!serverURL) throw new HelperError(MISSING_SERVER_URL_MESSAGE);
        await new Commands(loadSettings(io.env), io).erase(serverURL);
        return ok();
      }
      default:
        throw new HelperError(`Unknown credential action \`${action}\``);
    }
  } catch (e) {
    // Messages never carry secrets: only HelperError texts and system error descriptions get here.
    const message = e instanceof HelperError ? e.message : `${HELPER_NAME}: ${(e as Error).message}`;
    // docker prints this line to the terminal: one line, no control sequences (see terminal.ts).
    return { stdout: `${printable(message, 2000)}\n`, exitCode: 1 };
  }
}
