import * as oidc from 'openid-client';

export interface DiscoveryOptions {
  issuer: string;
  clientID: string;
  clientSecret: string | undefined;
  allowInsecureIssuer: boolean;
  fetch?: typeof fetch;
  /** Per-request timeout, seconds. */
  timeout?: number;
}

/** Fails at startup (config time) rather than at the first sign-in. */
export function assertIssuerAllowed(issuer: string, allowInsecureIssuer: boolean): void {
  const url = new URL(issuer);
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && allowInsecureIssuer) return;
  throw new Error(`issuer ${issuer} is not https; set allowInsecureIssuer: true only for a local development provider`);
}

/**
 * The provider's metadata sets the client authentication: client_secret_basic unless the provider
 * lists only client_secret_post (basic is the OAuth default and what oidc-provider, Keycloak and Google
 * all accept), none for a public client.
 */
function clientAuthFor(metadata: oidc.ServerMetadata, secret: string | undefined): oidc.ClientAuth {
  if (!secret) return oidc.None();
  const supported = metadata.token_endpoint_auth_methods_supported;
  if (supported && !supported.includes('client_secret_basic') && supported.includes('client_secret_post')) return oidc.ClientSecretPost(secret);
  return oidc.ClientSecretBasic(secret);
}

function applyTransport(config: oidc.Configuration, opts: DiscoveryOptions): void {
  if (opts.allowInsecureIssuer) oidc.allowInsecureRequests(config);
  if (opts.fetch) {
    const f = opts.fetch;
    config[oidc.customFetch] = (url, init) => f(url, init as RequestInit);
  }
  config.timeout = opts.timeout ?? 10;
}

/**
 * Discovery on first use, cached. A failed discovery is not cached, so a provider that was down when
 * Berth started is picked up by the next sign-in instead of needing a restart.
 */
export function lazyDiscovery(opts: DiscoveryOptions): () => Promise<oidc.Configuration> {
  let pending: Promise<oidc.Configuration> | undefined;
  return () => {
    pending ??= (async () => {
      const execute = opts.allowInsecureIssuer ? [oidc.allowInsecureRequests] : [];
      const f = opts.fetch;
      const discovered = await oidc.discovery(new URL(opts.issuer), opts.clientID, undefined, oidc.None(), {
        execute,
        timeout: opts.timeout ?? 10,
        ...(f ? { [oidc.customFetch]: (url: string, init: oidc.CustomFetchOptions) => f(url, init as RequestInit) } : {}),
      });
      const metadata = discovered.serverMetadata();
      const config = new oidc.Configuration(metadata, opts.clientID, opts.clientSecret, clientAuthFor(metadata, opts.clientSecret));
      applyTransport(config, opts);
      return config;
    })();
    pending.catch(() => {
      pending = undefined;
    });
    return pending;
  };
}
