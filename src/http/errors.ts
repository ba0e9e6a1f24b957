import type { Context } from 'koa';

/** An answer in the registry's error format: `{"errors":[{"code","message"}]}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const badRequest = (message: string) => new HttpError(400, 'INVALID_REQUEST', message);
export const unavailable = (message = 'the credential store is unavailable; try again shortly') => new HttpError(503, 'UNAVAILABLE', message, { 'Retry-After': '1' });

export function sendError(ctx: Context, err: HttpError): void {
  ctx.status = err.status;
  for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
  ctx.type = 'application/json';
  ctx.body = { errors: [{ code: err.code, message: err.message }] };
}
