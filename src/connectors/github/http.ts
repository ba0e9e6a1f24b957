import { UpstreamUnavailableError } from '../../model/identity.js';

export const API_VERSION = '2022-11-28';
/** More than 2,000 orgs or teams is not a real account; stop instead of looping on a bad Link. */
export const MAX_PAGES = 20;
export const PER_PAGE = 100;
/**
 * Largest answer body read from GitHub. A page of 100 team objects (each with its organization)
 * is about 300 KB; a body beyond this is not GitHub answering normally, and reading it whole would
 * cost memory in proportion to whatever the other end sends (a 120 MB /user/teams took RSS to 463 MB).
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Error bodies are only read for their message. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** GitHub answered, but with a status the caller has to interpret (401 on a token, 403 on a scope). */
export class GithubStatusError extends Error {
  override name = 'GithubStatusError';
  constructor(
    readonly status: number,
    readonly path: string,
    readonly githubMessage: string | undefined,
  ) {
    super(`GitHub answered ${status} for ${path}${githubMessage ? `: ${githubMessage}` : ''}`);
  }
}

export interface GithubHttpOptions {
  apiRoot: string;
  fetch: typeof fetch;
  timeoutMs: number;
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ?? cause?.message ?? e.message;
  }
  return String(e);
}

/**
 * GitHub answered, but not with the whole of what was asked: a listing cut at MAX_PAGES, a body
 * over MAX_BODY_BYTES, or a membership listing it refused to show. Using the part would mean fewer
 * groups, and a group's deny rule silently not applying; so this is an upstream failure (grace,
 * then fail closed, when re-checking) and a refused sign-in. The message is meant for people.
 */
export class GithubAnswerIncomplete extends UpstreamUnavailableError {
  override name = 'GithubAnswerIncomplete';
}

/** A request that never reached a usable answer: the provider is unavailable, not the user refused. */
export async function fetchOrUnavailable(f: typeof fetch, url: string, init: RequestInit, what: string): Promise<Response> {
  try {
    return await f(url, init);
  } catch (e) {
    throw new UpstreamUnavailableError(`GitHub ${what} unreachable: ${describe(e)}`);
  }
}

/** The body as text, reading no more than `limit` bytes (after decompression) of it. */
export async function readLimited(res: Response, what: string, limit = MAX_BODY_BYTES): Promise<string> {
  const tooLarge = () => new GithubAnswerIncomplete(`GitHub's ${what} answer was larger than ${Math.round(limit / 1024)} KB; Berth does not read answers that size`);
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await res.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof GithubAnswerIncomplete) throw e;
    throw new UpstreamUnavailableError(`GitHub ${what} answer was cut off: ${describe(e)}`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function readJSON(res: Response, what: string): Promise<unknown> {
  const text = await readLimited(res, what);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UpstreamUnavailableError(`GitHub ${what} answered ${res.status} with something other than JSON`);
  }
}

function isRateLimited(res: Response): boolean {
  // Documented: primary limits answer 403/429 with x-ratelimit-remaining 0, secondary ones carry retry-after.
  return res.headers.get('x-ratelimit-remaining') === '0' || res.headers.has('retry-after');
}

/** The rel="next" target of an RFC 8288 Link header, if any. */
export function nextLink(header: string | null): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(',')) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!m) continue;
    const rel = /(?:^|;)\s*rel\s*=\s*"?([^";]*)"?/i.exec(m[2]!);
    if (rel && rel[1]!.split(/\s+/).includes('next')) return m[1];
  }
  return undefined;
}

/** Bearer-authenticated GET requests against one REST API root. */
export class GithubHttp {
  private readonly root: URL;

  constructor(private readonly opts: GithubHttpOptions) {
    this.root = new URL(`${opts.apiRoot}/`);
  }

  private url(pathOrURL: string): URL {
    const u = /^https?:/i.test(pathOrURL) ? new URL(pathOrURL) : new URL(pathOrURL.replace(/^\//, ''), this.root);
    // The token must only ever go to the configured API: a Link header pointing elsewhere is refused.
    if (u.origin !== this.root.origin || !u.pathname.startsWith(this.root.pathname)) {
      throw new UpstreamUnavailableError(`GitHub pointed to ${u.origin}${u.pathname}, outside the configured API root`);
    }
    return u;
  }

  private async get(token: string, url: URL): Promise<{ res: Response; body: unknown }> {
    const path = url.pathname.slice(this.root.pathname.length - 1);
    const res = await fetchOrUnavailable(
      this.opts.fetch,
      url.href,
      {
        method: 'GET',
        redirect: 'manual',
        headers: {
          Authorization: `Bearer ${token}`,
          Accept: 'application/vnd.github+json',
          'X-GitHub-Api-Version': API_VERSION,
          'User-Agent': 'berth',
        },
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      },
      path,
    );
    if (res.status >= 500 || res.status === 429 || (res.status === 403 && isRateLimited(res))) {
      await res.body?.cancel().catch(() => {});
      throw new UpstreamUnavailableError(`GitHub ${path} answered ${res.status}${res.status === 403 || res.status === 429 ? ' (rate limited)' : ''}`);
    }
    if (res.status !== 200) {
      let message: string | undefined;
      try {
        const b = JSON.parse(await readLimited(res, path, MAX_ERROR_BODY_BYTES)) as { message?: unknown };
        if (typeof b?.message === 'string') message = b.message.slice(0, 200);
      } catch {
        // A non-JSON (or oversized) error body still has a meaningful status.
      }
      if (res.status >= 300 && res.status < 400) throw new UpstreamUnavailableError(`GitHub ${path} answered with a redirect (${res.status})`);
      throw new GithubStatusError(res.status, path, message);
    }
    return { res, body: await readJSON(res, path) };
  }

  async getOne(token: string, path: string): Promise<unknown> {
    return (await this.get(token, this.url(path))).body;
  }

  /**
   * Follows Link rel="next" up to MAX_PAGES. A listing with more pages throws GithubAnswerIncomplete:
   * dropping the remainder would mean fewer groups, and fewer groups can mean more access.
   */
  async getAll(token: string, path: string): Promise<unknown[]> {
    const first = this.url(path);
    first.searchParams.set('per_page', String(PER_PAGE));
    const items: unknown[] = [];
    let next: URL | undefined = first;
    for (let page = 0; next && page < MAX_PAGES; page++) {
      const { res, body } = await this.get(token, next);
      if (!Array.isArray(body)) throw new UpstreamUnavailableError(`GitHub ${first.pathname} did not answer with a list`);
      items.push(...body);
      const link = nextLink(res.headers.get('link'));
      next = link ? this.url(link) : undefined;
    }
    if (next) {
      throw new GithubAnswerIncomplete(`GitHub lists more than ${MAX_PAGES} pages (${MAX_PAGES * PER_PAGE} entries) at ${first.pathname.slice(this.root.pathname.length - 1)}; Berth does not use an incomplete list`);
    }
    return items;
  }
}
