/**
 * One entry of a registry token's `access` claim (distribution's token spec, "access"): what the
 * token lets its bearer do to one resource. The wire module (src/http/token/wire.ts) and the signer
 * (src/tokens/registry-jwt.ts) share it.
 */
export interface AccessEntry {
  type: string;
  class?: string;
  name: string;
  actions: string[];
}
