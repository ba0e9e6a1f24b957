import type { IncomingMessage } from 'node:http';
import { parse } from 'node:querystring';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Transform } from 'node:stream';
import { HttpError } from '../errors.js';
import type { Params } from './request.js';

/** A token POST's form is a few hundred bytes; 16 kB is what the app's body parser allows forms too. */
export const MAX_FORM_BYTES = 16 * 1024;

const tooLarge = () => new HttpError(413, 'TOO_LARGE', `request body larger than ${MAX_FORM_BYTES} bytes`);
const badEncoding = () => new HttpError(400, 'INVALID_REQUEST', 'the request body is not validly compressed as its Content-Encoding says');

function decoderFor(encoding: string): Transform | null {
  switch (encoding) {
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'deflate':
      return createInflate();
    case 'br':
      return createBrotliDecompress();
    default:
      throw new HttpError(415, 'UNSUPPORTED', `unsupported content encoding ${JSON.stringify(encoding.slice(0, 40))}`);
  }
}

const LIST_ITEM = /^([^[\]]+)\[\d*\]$/;

/**
 * Token forms are flat. Clients that write lists PHP-style (`scope[]=…`, `scope[0]=…`) get them read
 * as lists, as the app's form parser (qs) did; any other bracketed name (`username[a]=…`) is an
 * object where a string belongs and is refused by name.
 */
function flatten(form: Params): Params {
  const out: Params = Object.create(null) as Params;
  for (const key of Object.keys(form)) {
    const value = form[key]!;
    const open = key.indexOf('[');
    if (open <= 0 || !key.endsWith(']')) {
      out[key] = merge(out[key], value);
      continue;
    }
    const m = LIST_ITEM.exec(key);
    if (!m) throw new HttpError(400, 'INVALID_REQUEST', `parameter ${key.slice(0, Math.min(open, 40))} must be a string`);
    out[m[1]!] = merge(out[m[1]!], Array.isArray(value) ? value : [value]);
  }
  return out;
}

function merge(a: string | string[] | undefined, b: string | string[]): string | string[] {
  if (a === undefined) return b;
  return ([] as string[]).concat(a, b);
}

/** True when the Content-Type is a urlencoded form (parameters such as charset allowed). */
export function isForm(req: IncomingMessage): boolean {
  const type = req.headers['content-type'];
  if (!type) return false;
  const semi = type.indexOf(';');
  return (semi < 0 ? type : type.slice(0, semi)).trim().toLowerCase() === 'application/x-www-form-urlencoded';
}

/**
 * Reads a urlencoded body straight from node:http: at most MAX_FORM_BYTES after decompression
 * (gzip, deflate, br; 415 for another encoding, 400 for a body that does not decompress, 413 past
 * the limit, counted on the decompressed bytes so that a small bomb stops early). Whatever is left
 * unread is drained so that the connection can carry the next request. Parsing is node:querystring,
 * linear, with names given twice as arrays and no prototype.
 */
export function readForm(req: IncomingMessage): Promise<Params> {
  return new Promise<Params>((resolve, reject) => {
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    const declared = Number(req.headers['content-length']);
    let source: NodeJS.ReadableStream = req;
    let decoder: Transform | null = null;
    try {
      if (encoding !== 'identity' && encoding !== '') decoder = decoderFor(encoding);
      // An uncompressed body that says it is too large is refused before it is read.
      if (!decoder && declared > MAX_FORM_BYTES) throw tooLarge();
    } catch (e) {
      req.resume();
      reject(e);
      return;
    }
    const chunks: Buffer[] = [];
    let length = 0;
    let settled = false;
    const fail = (e: HttpError) => {
      if (settled) return;
      settled = true;
      if (decoder) {
        req.unpipe(decoder);
        decoder.destroy();
      }
      req.resume();
      reject(e);
    };
    if (decoder) {
      // A decoder's error after we gave up (a bomb cut short) must find a listener, or it takes the process down.
      decoder.on('error', () => fail(badEncoding()));
      req.pipe(decoder);
      source = decoder;
    }
    source.on('data', (chunk: Buffer) => {
      if (settled) return;
      length += chunk.length;
      if (length > MAX_FORM_BYTES) return fail(tooLarge());
      chunks.push(chunk);
    });
    source.on('end', () => {
      if (settled) return;
      settled = true;
      try {
        resolve(flatten(parse(Buffer.concat(chunks, length).toString('utf8')) as Params));
      } catch (e) {
        reject(e);
      }
    });
    // The client went away or broke the framing: nothing to answer, but nothing to leave pending.
    req.on('error', () => fail(new HttpError(400, 'INVALID_REQUEST', 'the request body could not be read')));
  });
}
