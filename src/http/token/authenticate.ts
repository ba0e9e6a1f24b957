import type { Credentials } from '../../identity/credentials.js';
import type { Principal } from '../../identity/principal.js';
import type { TokenRequest } from './request.js';

/** Step 2: who is asking. Throws AuthenticationError (401) or StoreUnavailableError (503). */
/** `beforeVerify`: what must precede a real password verification (the lockout read). */
export function authenticate(req: TokenRequest, credentials: Credentials, clientIp: string, beforeVerify?: () => Promise<void>): Promise<Principal> | Principal {
  switch (req.grantType) {
    case 'none':
      return credentials.anonymous();
    case 'refresh_token':
      return credentials.refresh(req.refreshToken);
    case 'password':
      return credentials.password(req.username, req.password, clientIp, beforeVerify);
  }
}
