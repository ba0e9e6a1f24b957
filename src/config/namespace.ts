import { formatPath } from './errors.js';
import type { RawConfig } from './schema.js';
import type { NamespaceSources } from '../model/account-names.js';

/** The account-name sources a configuration declares, for the namespace rules in src/identity/account-names.ts. */
export function namespaceSources(raw: Pick<RawConfig, 'connectors' | 'federation'>, userNames: Iterable<string>): NamespaceSources {
  return {
    staticUsers: [...userNames],
    connectors: raw.connectors.map((c, i) => ({ id: c.id, prefix: c.accountPrefix, where: formatPath(['connectors', i]) })),
    federation: raw.federation.map((f, i) => ({ issuer: f.issuer, template: f.account, where: formatPath(['federation', i]) })),
  };
}
