import type { Writable } from 'node:stream';
import { bodyParser } from '@koa/bodyparser';
import type Koa from 'koa';
import { HttpError } from './errors.js';

type ParserOptions = NonNullable<Parameters<typeof bodyParser>[0]>;

/** What a failed body parse means for the client: always a 4xx, never the parser's 500. */
export function bodyError(e: unknown): HttpError {
  const err = e as { status?: unknown; expose?: unknown; message?: unknown; code?: unknown };
  const status = typeof err.status === 'number' && err.status >= 400 && err.status < 500 ? err.status : 400;
  // zlib (Z_DATA_ERROR, Z_BUF_ERROR…) and brotli (ERR_…) errors carry no status: the client sent
  // something that says it is compressed and is not.
  if (status === 400 && typeof err.code === 'string' && /^(Z_|ERR_)/.test(err.code)) return new HttpError(400, 'INVALID_REQUEST', 'the request body is not validly compressed as its Content-Encoding says');
  const code = status === 413 ? 'TOO_LARGE' : status === 415 ? 'UNSUPPORTED' : 'INVALID_REQUEST';
  return new HttpError(status, code, err.expose === true && typeof err.message === 'string' && err.message ? err.message : 'the request body could not be read');
}

/**
 * @koa/bodyparser with every failure turned into a 4xx and compressed bodies made safe. The parser
 * pipes a compressed body through a zlib stream and stops listening to it when it gives up (past
 * the size limit): the stream's later error (a truncated body) then had no listener and took the
 * whole process down. Each such stream gets a listener here and is dropped with the request's rest.
 */
export function parseBodies(opts: ParserOptions): Koa.Middleware {
  const decompressors = new WeakMap<object, Writable[]>();
  const parse = bodyParser({
    ...opts,
    onError: (e, ctx) => {
      const req = ctx.req;
      for (const d of decompressors.get(req) ?? []) {
        req.unpipe(d);
        d.destroy();
      }
      // Read and discard what is left, so the connection can carry the next request.
      req.resume();
      throw bodyError(e);
    },
  });
  return (ctx, next) => {
    const req = ctx.req;
    if (req.headers['content-encoding']) {
      const pipe = req.pipe;
      req.pipe = function <T extends NodeJS.WritableStream>(this: typeof req, dest: T, options?: { end?: boolean }): T {
        (dest as unknown as Writable).on('error', () => {});
        decompressors.set(req, [...(decompressors.get(req) ?? []), dest as unknown as Writable]);
        return pipe.call(this, dest, options) as T;
      };
    }
    return parse(ctx, next);
  };
}
