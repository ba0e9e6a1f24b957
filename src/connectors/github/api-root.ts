import type { GithubConnectorConfig } from '../../config/connectors-github.js';

const GITHUB_COM = 'https://github.com';

function trimSlash(u: string): string {
  return u.replace(/\/+$/, '');
}

/** The web origin (authorize and token endpoints), without a trailing slash. */
export function githubWebRoot(cfg: Pick<GithubConnectorConfig, 'baseURL'>): string {
  return trimSlash(cfg.baseURL ?? GITHUB_COM);
}

/**
 * The REST API root: github.com serves it from a separate host, Enterprise Server under /api/v3 of
 * the instance. An explicit apiURL wins (GHE behind a proxy, data residency hosts, tests).
 */
export function githubAPIRoot(cfg: Pick<GithubConnectorConfig, 'baseURL' | 'apiURL'>): string {
  if (cfg.apiURL) return trimSlash(cfg.apiURL);
  const web = githubWebRoot(cfg);
  const host = new URL(web).host.toLowerCase();
  if (host === 'github.com' || host === 'www.github.com') return 'https://api.github.com';
  return `${web}/api/v3`;
}
