import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a registry client asked Berth's token endpoint for; secrets are reduced to their kind. */
export interface TokenCall {
  method: string;
  /** GET: Basic / Bearer / none. POST: the form's grant_type. */
  grant: 'basic' | 'anonymous' | 'password' | 'refresh_token' | string;
  /** Basic's or the form's username ('' when none). */
  username: string;
  clientId: string;
  offline: boolean;
  scopes: string[];
  status: number;
  /** Date.now() when the request arrived. */
  at: number;
}

export interface TokenRecorder {
  /** Put this, not Berth's, in the registry's `realm`. */
  realm: string;
  calls: TokenCall[];
  clear(): void;
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A pass-through in front of Berth's /auth that notes each token request a real client makes (how
 * docker and containerd ask is what the README reports). It forwards method, query, Authorization
 * and body unchanged and hands back Berth's status, headers that matter and body.
 */
export async function startTokenRecorder(berthUrl: string): Promise<TokenRecorder> {
  const calls: TokenCall[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const raw = await body(req);
      const auth = req.headers.authorization ?? '';
      const q = url.searchParams;
      const form = req.method === 'POST' ? new URLSearchParams(raw.toString('utf8')) : new URLSearchParams();
      let grant = 'anonymous';
      let username = '';
      if (req.method === 'POST') {
        grant = form.get('grant_type') ?? '';
        username = form.get('username') ?? '';
      } else if (/^basic /i.test(auth)) {
        grant = 'basic';
        username = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':')[0] ?? '';
      } else if (auth) grant = auth.split(' ')[0]!.toLowerCase();
      const call: TokenCall = {
        method: req.method ?? '',
        grant,
        username,
        clientId: (req.method === 'POST' ? form.get('client_id') : q.get('client_id')) ?? '',
        offline: q.get('offline_token') === 'true' || form.get('access_type') === 'offline',
        scopes: [...q.getAll('scope'), ...(form.get('scope')?.split(' ').filter(Boolean) ?? [])],
        status: 0,
        at: Date.now(),
      };
      calls.push(call);
      const headers: Record<string, string> = {};
      for (const h of ['authorization', 'content-type', 'user-agent']) if (req.headers[h]) headers[h] = String(req.headers[h]);
      try {
        const upstream = await fetch(`${berthUrl}${url.pathname}${url.search}`, { method: req.method, headers, ...(req.method === 'POST' ? { body: new Uint8Array(raw) } : {}) });
        const out = Buffer.from(await upstream.arrayBuffer());
        call.status = upstream.status;
        const back: Record<string, string> = {};
        for (const h of ['content-type', 'www-authenticate', 'retry-after', 'cache-control']) {
          const v = upstream.headers.get(h);
          if (v) back[h] = v;
        }
        res.writeHead(upstream.status, back).end(out);
      } catch (e) {
        call.status = 502;
        res.writeHead(502, { 'content-type': 'text/plain' }).end(`recorder: ${(e as Error).message}`);
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/auth`,
    calls,
    clear: () => void calls.splice(0),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** "GET basic ×1, POST refresh_token ×3" — how a README line reads a list of calls. */
export function summarize(calls: TokenCall[]): string {
  const counts = new Map<string, number>();
  for (const c of calls) counts.set(`${c.method} ${c.grant} ${c.status}`, (counts.get(`${c.method} ${c.grant} ${c.status}`) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} ×${n}`).join(', ') || 'none';
}
