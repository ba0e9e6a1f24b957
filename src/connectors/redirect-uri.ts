/**
 * The one rule for a connector's redirect URI: the configured `redirectURL` (what is registered at
 * the provider, behind a proxy say), else `{publicURL}/callback/{id}`. The sign-in route stores it in
 * the attempt, so the callback exchanges the code with the URI the authorization used even across a
 * reload.
 */
export function redirectURIFor(cfg: { id: string; redirectURL?: string | undefined }, publicURL: string): string {
  return cfg.redirectURL ?? `${publicURL.replace(/\/+$/, '')}/callback/${cfg.id}`;
}
