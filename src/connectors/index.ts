import type { ConnectorConfig } from './schema.js';
import type { CallbackConnector } from './connector.js';
import { createGithubConnector } from './github/index.js';
import { createOidcConnector } from './oidc/index.js';

export interface ConnectorEnv {
  publicURL: string;
  fetch?: typeof fetch;
}

/** One connector per `connectors:` entry, keyed by id, in config order (the sign-in page's order). */
export function createConnectors(configs: readonly ConnectorConfig[], env: ConnectorEnv): Map<string, CallbackConnector> {
  const out = new Map<string, CallbackConnector>();
  for (const c of configs) out.set(c.id, c.type === 'github' ? createGithubConnector(c, env) : createOidcConnector(c, env));
  return out;
}
