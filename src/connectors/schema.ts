import { z } from 'zod';
import { githubConnectorSchema } from './github/schema.js';
import { googleConnectorSchema, keycloakConnectorSchema, oidcConnectorSchema } from './oidc/schema.js';

export const connectorSchema = z.discriminatedUnion('type', [oidcConnectorSchema, keycloakConnectorSchema, googleConnectorSchema, githubConnectorSchema]);
export type ConnectorConfig = z.infer<typeof connectorSchema>;
