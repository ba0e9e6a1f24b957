import { z } from 'zod';
import { githubConnectorSchema } from './connectors-github.js';
import { googleConnectorSchema, keycloakConnectorSchema, oidcConnectorSchema } from './connectors-oidc.js';

export const connectorSchema = z.discriminatedUnion('type', [oidcConnectorSchema, keycloakConnectorSchema, googleConnectorSchema, githubConnectorSchema]);
export type ConnectorConfig = z.infer<typeof connectorSchema>;
