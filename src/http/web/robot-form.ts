import { HttpError } from '../errors.js';

// Robot input as the admin page's form and the JSON API send it, parsed once for both (as
// token-form.ts does for PATs).

function strings(v: unknown, what: string): string[] {
  const list = Array.isArray(v) ? v : typeof v === 'string' ? v.split(/[\s,]+/) : [];
  if (!list.every((x) => typeof x === 'string')) throw new HttpError(400, 'INVALID_REQUEST', `${what} must be strings`);
  return (list as string[]).filter(Boolean);
}

/** Parses create input shared by the JSON API and the admin page. */
export function robotInput(body: Record<string, unknown>) {
  const name = typeof body.name === 'string' ? body.name : '';
  let expiresAt: number | null = null;
  if (body.expiresInDays !== undefined && body.expiresInDays !== '') {
    const n = Number(body.expiresInDays);
    if (!Number.isInteger(n) || n <= 0 || n > 3650) throw new HttpError(400, 'INVALID_REQUEST', 'expiresInDays must be a whole number from 1 to 3650');
    expiresAt = Date.now() + n * 86_400_000;
  }
  return {
    name,
    description: typeof body.description === 'string' ? body.description : '',
    restriction: { repositories: strings(body.repositories, 'repositories'), actions: strings(body.actions, 'actions') },
    expiresAt,
  };
}
