import type { ConnectorConfig } from '../config/connectors.js';
import type { CallbackConnector } from './connector.js';
import { createGithubConnector } from './github/index.js';
import { createOidcConnector } from './oidc/index.js';

export interface ConnectorEnv {
  publicURL: string;
  fetch?: typeof fetch;
}

type Factory<T extends ConnectorConfig['type']> = (cfg: Extract<ConnectorConfig, { type: T }>, env: ConnectorEnv) => CallbackConnector;

/** Connector type → factory (dex-style): a new type is one entry here and one folder beside this file. */
const FACTORIES: { [T in ConnectorConfig['type']]: Factory<T> } = {
  oidc: createOidcConnector,
  keycloak: createOidcConnector,
  google: createOidcConnector,
  github: createGithubConnector,
};

function create<T extends ConnectorConfig['type']>(cfg: Extract<ConnectorConfig, { type: T }>, env: ConnectorEnv): CallbackConnector {
  return (FACTORIES[cfg.type as T] as Factory<T>)(cfg, env);
}

/** One connector per `connectors:` entry, keyed by id, in config order (the sign-in page's order). */
export function createConnectors(configs: readonly ConnectorConfig[], env: ConnectorEnv): Map<string, CallbackConnector> {
  const out = new Map<string, CallbackConnector>();
  for (const c of configs) out.set(c.id, create(c, env));
  return out;
}
