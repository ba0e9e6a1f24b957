const UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds from `900`, `"900"`, `"15m"`, `"12h"` or `"30d"` (already shape-checked by the schema). */
export function durationToSeconds(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+)([smhd]?)$/.exec(v);
  if (!m) throw new Error(`not a duration: ${v}`);
  return Number(m[1]) * (UNIT[m[2] || 's'] ?? 1);
}
