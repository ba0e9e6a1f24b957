import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import type { TargetReady } from './target.js';

/**
 * The closed-loop load of one measurement: `connections` keep one request in flight each for
 * `duration` seconds. wrk (C, one thread) where installed, else autocannon (JavaScript): on a
 * two-core machine the generator shares the CPU with the server, and autocannon's own event loop
 * (three quarters of a core at 15k req/s) adds to the latencies it reports and rounds them to
 * whole milliseconds; wrk needs a fraction of that and reports microseconds.
 */
export type Generator = 'wrk' | 'autocannon';

export interface LoadResult {
  reqPerSec: number;
  /** Milliseconds. */
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** CPU seconds the generator used (user + system). */
  generatorCpuSeconds: number;
}

export function wrkInstalled(): boolean {
  return spawnSync('wrk', ['--version']).error === undefined;
}

/** With freshScopes, every request names another repository (team-a/svc-N): no answer repeats. */
function freshPath(path: string, n: number): string {
  return path.replace('svc-0%3A', `svc-${n}%3A`);
}

// The same substitution as freshPath(), in wrk's Lua; `done` prints the figures as one JSON line.
const WRK_SCRIPT = String.raw`
local base = os.getenv("BENCH_PATH")
local n = 0
if os.getenv("BENCH_FRESH") == "1" then
  request = function()
    n = n + 1
    return wrk.format(nil, (base:gsub("svc%-0%%3A", "svc-" .. n .. "%%3A")))
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\nBENCH_JSON {"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"errors":%d,"non2xx":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
`;

let scriptPath: string | undefined;

async function loadWithWrk(t: TargetReady, connections: number, duration: number, freshScopes: boolean): Promise<LoadResult> {
  if (!scriptPath) {
    scriptPath = join(mkdtempSync(join(tmpdir(), 'berth-bench-wrk-')), 'bench.lua');
    writeFileSync(scriptPath, WRK_SCRIPT);
  }
  const args = ['-t1', `-c${connections}`, `-d${duration}s`, '--timeout', '10s', '-s', scriptPath];
  for (const [k, v] of Object.entries(t.headers)) args.push('-H', `${k}: ${v}`);
  args.push(`${t.url}${t.path}`);
  // The shell reports its children's CPU time (/proc/PID/stat cutime + cstime) once wrk is reaped.
  const child = spawn('sh', ['-c', 'wrk "$@"; s=$?; cat /proc/$$/stat >&2; exit $s', 'sh', ...args], {
    env: { ...process.env, BENCH_PATH: t.path, BENCH_FRESH: freshScopes ? '1' : '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const line = /^BENCH_JSON (.*)$/m.exec(stdout);
  if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}): ${stderr.trim() || stdout.trim()}`);
  const r = JSON.parse(line[1]!) as { requests: number; durationUs: number; p50Us: number; p99Us: number; errors: number; non2xx: number };
  const stat = stderr.slice(stderr.lastIndexOf(')') + 2).split(' ');
  // cutime and cstime are fields 16 and 17 of the file, in clock ticks (USER_HZ, 100 on Linux).
  const generatorCpuSeconds = (Number(stat[13]) + Number(stat[14])) / 100;
  return {
    reqPerSec: r.requests / (r.durationUs / 1e6),
    p50: r.p50Us / 1000,
    p99: r.p99Us / 1000,
    requests: r.requests,
    non2xx: r.non2xx,
    errors: r.errors,
    generatorCpuSeconds: Number.isFinite(generatorCpuSeconds) ? generatorCpuSeconds : NaN,
  };
}

// Closed loop on purpose: autocannon's rate limit lets each connection send its whole second's quota
// at once, so its latencies under a "fixed rate" describe bursts, not a steady load.
async function loadWithAutocannon(t: TargetReady, connections: number, duration: number, freshScopes: boolean): Promise<LoadResult> {
  let n = 0;
  const requests = freshScopes ? [{ setupRequest: (req: { path?: string } & Record<string, unknown>) => ({ ...req, path: freshPath(t.path, ++n) }) }] : undefined;
  const before = process.cpuUsage();
  const r = await autocannon({ url: `${t.url}${t.path}`, headers: t.headers, connections, duration, timeout: 10, ...(requests ? { requests } : {}) });
  const own = process.cpuUsage(before);
  return {
    reqPerSec: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    requests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    generatorCpuSeconds: (own.user + own.system) / 1e6,
  };
}

export function load(generator: Generator, t: TargetReady, connections: number, duration: number, freshScopes = false): Promise<LoadResult> {
  return generator === 'wrk' ? loadWithWrk(t, connections, duration, freshScopes) : loadWithAutocannon(t, connections, duration, freshScopes);
}
