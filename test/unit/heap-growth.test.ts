import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { limitHeapGrowth } from '../../src/app/heap-growth.js';

describe('limitHeapGrowth', () => {
  it('runs a full collection at start-up and leaves gc unexposed afterwards', () => {
    // The collection is what makes the growth limit apply from the first second; it shows as heap
    // freed when there is garbage to free.
    let garbage: unknown[] | null = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${i}` }));
    expect(garbage.length).toBe(200_000);
    garbage = null;
    const before = process.memoryUsage().heapUsed;
    limitHeapGrowth();
    const after = process.memoryUsage().heapUsed;
    expect(before - after).toBeGreaterThan(5 * 1024 * 1024);
    // gc is exposed only for that one call: new contexts (other libraries' vm sandboxes) do not get it.
    expect(runInNewContext('typeof gc')).toBe('undefined');
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe('undefined');
    // Idempotent: every startServer() calls it.
    expect(() => limitHeapGrowth()).not.toThrow();
  });
});
