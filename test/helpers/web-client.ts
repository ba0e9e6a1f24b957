/**
 * A fetch-based browser for tests that need a signed-in session without chromium: one cookie jar
 * (Berth and the dev provider share the host 127.0.0.1, as cookies do in a real browser), manual
 * redirects, and form submission of the provider's login page.
 */
export class WebClient {
  private readonly cookies = new Map<string, string>();

  constructor(readonly base: string) {}

  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  private keep(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const gone = value === '' || attrs.some((a) => /^\s*max-age=0/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]!) < Date.now()));
      if (gone) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const res = await fetch(new URL(url, this.base), { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), cookie: this.cookieHeader() } });
    this.keep(res);
    return res;
  }

  /** GET following redirects; returns the last response and its URL. */
  async get(url: string | URL): Promise<{ res: Response; url: URL; html: string }> {
    let u = new URL(url, this.base);
    for (let hop = 0; hop < 20; hop++) {
      const res = await this.fetch(u);
      const loc = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && loc) {
        u = new URL(loc, u);
        continue;
      }
      return { res, url: u, html: await res.text() };
    }
    throw new Error('too many redirects');
  }

  async postForm(url: string | URL, form: Record<string, string>): Promise<{ res: Response; url: URL; html: string }> {
    const u = new URL(url, this.base);
    const res = await this.fetch(u, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
    const loc = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && loc) return this.get(new URL(loc, u));
    return { res, url: u, html: await res.text() };
  }

  /** Signs in through a connector whose provider shows the dev provider's login form. */
  async signInOidc(connectorId: string, username: string, password: string): Promise<void> {
    const page = await this.get(`/login/${connectorId}`);
    const action = /<form method="post" action="([^"]+)"/.exec(page.html)?.[1];
    if (!action) throw new Error(`no login form at ${page.url}: ${page.res.status} ${page.html.slice(0, 200)}`);
    const done = await this.postForm(new URL(action.replace(/&amp;/g, '&'), page.url), { username, password });
    if (!done.url.pathname.endsWith('/tokens')) throw new Error(`sign-in ended at ${done.url} (${done.res.status}): ${done.html.slice(0, 300)}`);
  }

  async signInLocal(username: string, password: string): Promise<{ status: number; html: string }> {
    const page = await this.get('/');
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.html)?.[1] ?? '';
    const r = await this.postForm('/login/local', { csrf, username, password, returnTo: '/tokens' });
    return { status: r.res.status, html: r.html };
  }

  async csrf(): Promise<string> {
    const page = await this.get('/tokens');
    const m = /name="csrf" value="([^"]+)"/.exec(page.html);
    if (!m) throw new Error('not signed in');
    return m[1]!;
  }

  async createPat(name: string, extra: Record<string, string> = {}): Promise<string> {
    const r = await this.postForm('/tokens', { csrf: await this.csrf(), name, ...extra });
    const m = /<pre id="pat-secret">([^<]+)<\/pre>/.exec(r.html);
    if (!m) throw new Error(`no token on the page (${r.res.status}): ${r.html.slice(0, 300)}`);
    return m[1]!;
  }
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
