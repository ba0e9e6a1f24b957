import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfigText } from '../../src/app/load-config.js';

// Issue 9 item 6: without a shared secrets.encryptionKey every Redis replica sealed with its own
// random key, so replicas (and a restarted process) could not read each other's state.

async function problemsOf(text: string): Promise<string[]> {
  try {
    await loadConfigText(text, process.cwd());
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  expect.fail('config was accepted');
}

describe('secrets.encryptionKey with the redis store', () => {
  it('is required, and the error names the path', async () => {
    const problems = await problemsOf('store: { type: redis, redis: { url: "redis://127.0.0.1:6379" } }');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^secrets\.encryptionKey: required with the redis store/);
  });

  it('is accepted when set, and not needed with the memory store', async () => {
    const key = 'k'.repeat(40);
    const c = await loadConfigText(`store: { type: redis }\nsecrets: { encryptionKey: "${key}" }`, process.cwd());
    expect(c.raw.secrets.encryptionKey).toBe(key);
    await expect(loadConfigText('store: { type: memory }', process.cwd())).resolves.toBeDefined();
  });

  it('an unresolved ${env:} key is reported once, as unresolved', async () => {
    delete process.env.BERTH_TEST_SURELY_UNSET_KEY;
    const problems = await problemsOf('store: { type: redis }\nsecrets: { encryptionKey: "${env:BERTH_TEST_SURELY_UNSET_KEY}" }');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('BERTH_TEST_SURELY_UNSET_KEY');
  });
});
