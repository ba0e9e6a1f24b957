import { readFileSync } from 'node:fs';

/** The parts of a V8 .cpuprofile (written by `node --cpu-prof`) that the summary reads. */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  /** µs on the system's monotonic clock (what process.hrtime reads in every process). */
  startTime: number;
  endTime: number;
}

export interface FunctionCost {
  name: string;
  /** Where it lives: `berth dist/...:LINE`, a package name, or `node:...`. */
  where: string;
  selfMs: number;
  /** Self plus callees; after an `await` the rest of an async function is not under it. */
  totalMs: number;
}

export interface ProfileSummary {
  /** Sampled time analysed: the load window when it fits inside the profile, else all of it. */
  wallMs: number;
  windowed: boolean;
  /** Time the process had nothing to run (waiting on sockets, Redis). */
  idleMs: number;
  gcMs: number;
  functions: FunctionCost[];
  /** Self time per package, node module or Berth file. */
  byOrigin: { origin: string; selfMs: number }[];
  /** Total time of the functions asked for by name (all functions of that name together). */
  byName: Map<string, number>;
}

const SPECIAL = new Set(['(idle)', '(garbage collector)', '(program)', '(root)']);

/** Which code a frame belongs to, coarsely: a dependency, a node internal, a Berth file. */
export function originOf(url: string, functionName: string): string {
  if (!url) return SPECIAL.has(functionName) ? functionName : '(native)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return url.replace(/^node:internal\//, 'node:').split('/').slice(0, 2).join('/');
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `berth ${url.slice(dist + 1)}`;
  return url;
}

/**
 * Self time per function and total time (self plus callees, counted once per stack even under
 * recursion). `windowUs` (monotonic µs, as process.hrtime.bigint() / 1000n gives in any process on
 * the machine) restricts the analysis to the load, leaving out start-up and shutdown.
 */
export function summarizeProfile(path: string, opts: { top?: number; windowUs?: [number, number]; names?: readonly string[] } = {}): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const w = opts.windowUs;
  const windowed = Boolean(w && w[0] >= p.startTime && w[1] <= p.endTime);
  const keyOf = (n: ProfileNode) => `${n.callFrame.functionName || '(anonymous)'}\u0000${n.callFrame.url}\u0000${n.callFrame.lineNumber}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const byName = new Map<string, number>((opts.names ?? []).map((n) => [n, 0]));
  let at = p.startTime;
  let wallUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    // timeDeltas[i] is the time before sample i: the time after it is charged to it.
    const us = Math.max(0, p.timeDeltas[i + 1] ?? 0);
    if (windowed && (at < w![0] || at > w![1])) continue;
    wallUs += us;
    const id = p.samples[i]!;
    const k = keyOf(byId.get(id)!);
    self.set(k, (self.get(k) ?? 0) + us);
    const seen = new Set<string>();
    const seenName = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const node = byId.get(cur)!;
      const ck = keyOf(node);
      if (!seen.has(ck)) {
        seen.add(ck);
        total.set(ck, (total.get(ck) ?? 0) + us);
      }
      const name = node.callFrame.functionName;
      if (byName.has(name) && !seenName.has(name)) {
        seenName.add(name);
        byName.set(name, byName.get(name)! + us);
      }
    }
  }
  const describe = (k: string) => {
    const [name, url, line] = k.split('\u0000') as [string, string, string];
    const origin = originOf(url, name);
    return { name, where: origin.startsWith('berth ') ? `${origin}:${Number(line) + 1}` : origin };
  };
  const functions = [...self.entries()]
    .filter(([k]) => !SPECIAL.has(k.split('\u0000')[0]!))
    .sort((a, b) => b[1] - a[1])
    .slice(0, opts.top ?? 20)
    .map(([k, us]) => ({ ...describe(k), selfMs: us / 1000, totalMs: (total.get(k) ?? us) / 1000 }));
  const origins = new Map<string, number>();
  for (const [k, us] of self) {
    const [name, url] = k.split('\u0000') as [string, string];
    const o = originOf(url, name);
    origins.set(o, (origins.get(o) ?? 0) + us);
  }
  const special = (name: string) => [...self.entries()].filter(([k]) => k.startsWith(`${name}\u0000`)).reduce((s, [, us]) => s + us, 0) / 1000;
  for (const [k, us] of byName) byName.set(k, us / 1000);
  return {
    wallMs: wallUs / 1000,
    windowed,
    idleMs: special('(idle)'),
    gcMs: special('(garbage collector)'),
    functions,
    byOrigin: [...origins.entries()].map(([origin, us]) => ({ origin, selfMs: us / 1000 })).sort((a, b) => b.selfMs - a.selfMs),
    byName,
  };
}

/** A bucket of work, recognised by the outermost frame on a stack that matches it. */
export interface Category {
  name: string;
  matches(frame: { functionName: string; url: string }): boolean;
}

/**
 * Busy time split into categories: each sample goes to the first category matched walking its
 * stack from the root, so work is charged to what asked for it (a Redis write made for a PAT lookup
 * counts as the lookup); samples matching none go to `rest`.
 */
export function categorize(path: string, categories: readonly Category[], rest: string, windowUs?: [number, number]): Map<string, number> {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const windowed = Boolean(windowUs && windowUs[0] >= p.startTime && windowUs[1] <= p.endTime);
  const out = new Map<string, number>([...categories.map((c) => [c.name, 0] as [string, number]), [rest, 0]]);
  const memo = new Map<number, string | null>();
  const outermost = (id: number): string | null => {
    if (memo.has(id)) return memo.get(id)!;
    const up = parent.get(id);
    const above = up === undefined ? null : outermost(up);
    const own = above ?? categories.find((c) => c.matches(byId.get(id)!.callFrame))?.name ?? null;
    memo.set(id, own);
    return own;
  };
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    const us = Math.max(0, p.timeDeltas[i + 1] ?? 0);
    if (windowed && (at < windowUs![0] || at > windowUs![1])) continue;
    const id = p.samples[i]!;
    const leaf = byId.get(id)!.callFrame.functionName;
    if (leaf === '(idle)' || leaf === '(program)' || leaf === '(root)') continue;
    const name = outermost(id) ?? rest;
    out.set(name, out.get(name)! + us);
  }
  for (const [k, us] of out) out.set(k, us / 1000);
  return out;
}
