import { z } from 'zod';

export const githubConnectorSchema = z.strictObject({
  type: z.literal('github'),
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lowercase letters, digits and dashes'),
  name: z.string().optional(),
  clientID: z.string().min(1),
  // GitHub's web flow always needs the app's secret.
  clientSecret: z.string({ error: "GitHub's web flow needs clientSecret" }).min(1, "GitHub's web flow needs clientSecret"),
  redirectURL: z.string().url().optional(),
  /** https://github.com for github.com; for Enterprise Server the instance URL. */
  baseURL: z.string().url().default('https://github.com'),
  /** REST API root; derived from baseURL when absent (api.github.com or BASE/api/v3). */
  apiURL: z.string().url().optional(),
  allowedOrgs: z.array(z.string()).optional(),
  /** Put before this connector's usernames and groups; see the oidc connector's accountPrefix. */
  accountPrefix: z.string().default(''),
  loadTeams: z.boolean().default(true),
});

export type GithubConnectorConfig = z.infer<typeof githubConnectorSchema>;
