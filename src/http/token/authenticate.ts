import type { Credentials } from '../../identity/credentials.js';
import type { Principal } from '../../model/principal.js';
import type { TokenRequest } from './request.js';

/**
 * Step 2: who is asking, through the credential gate (which also applies lockouts and counts
 * failures). Throws AuthenticationError (401), RateLimitedError (429) or StoreUnavailableError (503).
 */
export function authenticate(req: TokenRequest, credentials: Credentials, clientIp: string): Promise<Principal> | Principal {
  switch (req.grantType) {
    case 'none':
      return credentials.anonymous();
    case 'refresh_token':
      return credentials.refresh(req.refreshToken, req.service, clientIp);
    case 'password':
      return credentials.password(req.username, req.password, clientIp);
  }
}
