import { describe, expect, it } from 'vitest';
import { formatScope, parseScope, parseScopes, ScopeError } from '../../src/policy/scope.js';

describe('parseScope: type[(class)]:name:actions', () => {
  it('parses a plain repository scope', () => {
    expect(parseScope('repository:team/app:pull,push')).toEqual({ type: 'repository', name: 'team/app', actions: ['pull', 'push'] });
  });

  it('reads from the right so a host:port name stays whole', () => {
    const s = parseScope('repository:host:5000/a/b:pull,push');
    expect(s.type).toBe('repository');
    expect(s.name).toBe('host:5000/a/b');
    expect(s.actions).toEqual(['pull', 'push']);
    expect(s.class).toBeUndefined();
  });

  it('keeps a resource class', () => {
    const s = parseScope('repository(plugin):x:pull');
    expect(s).toEqual({ type: 'repository', class: 'plugin', name: 'x', actions: ['pull'] });
    expect(formatScope(s)).toBe('repository(plugin):x:pull');
  });

  it('keeps a class together with a host:port name', () => {
    const s = parseScope('repository(plugin):reg.local:443/ns/p:pull');
    expect(s.class).toBe('plugin');
    expect(s.name).toBe('reg.local:443/ns/p');
  });

  it('accepts registry:catalog:*', () => {
    expect(parseScope('registry:catalog:*')).toEqual({ type: 'registry', name: 'catalog', actions: ['*'] });
  });

  it('collapses a repeated action', () => {
    expect(parseScope('repository:a:pull,pull,push').actions).toEqual(['pull', 'push']);
  });

  it('accepts an empty action list', () => {
    expect(parseScope('repository:a:').actions).toEqual([]);
  });

  it('round-trips through formatScope', () => {
    for (const raw of ['repository:a/b:pull', 'repository:host:5000/a:pull,push', 'registry:catalog:*', 'repository(plugin):p:pull']) {
      expect(formatScope(parseScope(raw))).toBe(raw);
    }
  });

  describe('bad input is a ScopeError with a message that says what is wrong', () => {
    const cases: [string, RegExp][] = [
      ['repository', /expected type:name:actions/],
      ['', /expected type:name:actions/],
      ['repository:onlyname', /expected type:name:actions/],
      [':a:pull', /expected type:name:actions/],
      ['repository::pull', /invalid resource name/],
      ['repository:a:PULL', /invalid action "PULL"/],
      ['repository:a:pull;rm', /invalid action "pull;rm"/],
      ['repository:a:pull,,push', /invalid action ""/],
      ['repository:a:pu ll', /invalid action/],
      ['repo sitory:a:pull', /invalid scope type/],
      ['repository(:a:pull', /invalid scope type/],
      ['repository:-a:pull', /invalid resource name/],
      ['repository:a b:pull', /invalid resource name/],
      [`repository:${'a'.repeat(600)}:pull`, /invalid resource name/],
    ];
    for (const [raw, message] of cases) {
      it(`rejects ${JSON.stringify(raw.slice(0, 40))}`, () => {
        let caught: unknown;
        try {
          parseScope(raw);
        } catch (e) {
          caught = e;
        }
        expect(caught).toBeInstanceOf(ScopeError);
        expect((caught as Error).message).toMatch(message);
      });
    }

    it('quotes at most a bounded part of a huge scope in the message', () => {
      try {
        parseScope('x'.repeat(100_000));
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(ScopeError);
        expect((e as Error).message.length).toBeLessThan(200);
      }
    });
  });
});

describe('parseScopes: several scope parameters', () => {
  it('merges repeated parameters for the same resource', () => {
    expect(parseScopes(['repository:a:pull', 'repository:a:push'])).toEqual([{ type: 'repository', name: 'a', actions: ['pull', 'push'] }]);
  });

  it('splits space-separated scopes inside one parameter and merges per resource', () => {
    const scopes = parseScopes(['repository:a:pull repository:b:push', 'repository:a:delete registry:catalog:*']);
    expect(scopes).toEqual([
      { type: 'repository', name: 'a', actions: ['pull', 'delete'] },
      { type: 'repository', name: 'b', actions: ['push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  it('ignores extra spaces between scopes', () => {
    expect(parseScopes(['  repository:a:pull   repository:b:pull  '])).toHaveLength(2);
  });

  it('merges asks that differ only in class (the registry keys access by type and name)', () => {
    expect(parseScopes(['repository:p:pull', 'repository(plugin):p:push'])).toEqual([{ type: 'repository', name: 'p', actions: ['pull', 'push'] }]);
    expect(parseScopes(['repository(plugin):p:pull', 'repository(plugin):p:push'])).toEqual([{ type: 'repository', class: 'plugin', name: 'p', actions: ['pull', 'push'] }]);
  });

  it('does not merge the same name under different types', () => {
    expect(parseScopes(['repository:catalog:pull', 'registry:catalog:*'])).toHaveLength(2);
  });

  it('returns nothing for no parameters', () => {
    expect(parseScopes([])).toEqual([]);
    expect(parseScopes([''])).toEqual([]);
  });

  it('accepts exactly the maximum number of distinct resources', () => {
    const params = Array.from({ length: 64 }, (_, i) => `repository:r${i}:pull`);
    expect(parseScopes(params, 64)).toHaveLength(64);
  });

  it('refuses too many distinct resources', () => {
    const params = Array.from({ length: 65 }, (_, i) => `repository:r${i}:pull`);
    expect(() => parseScopes(params, 64)).toThrow(ScopeError);
    expect(() => parseScopes(params, 64)).toThrow(/too many scopes \(at most 64\)/);
  });

  it('counts space-separated scopes towards the limit too', () => {
    const one = Array.from({ length: 5 }, (_, i) => `repository:r${i}:pull`).join(' ');
    expect(() => parseScopes([one], 4)).toThrow(/too many scopes/);
  });

  it('fails the whole request when any one scope is malformed', () => {
    expect(() => parseScopes(['repository:a:pull', 'garbage'])).toThrow(ScopeError);
  });
});
