/**
 * Docker's helper client compares stdout with these exact texts (docker-credential-helpers'
 * credentials/error.go): "not found" makes docker carry on anonymously instead of failing.
 */
export const NOT_FOUND_MESSAGE = 'credentials not found in native keychain';
export const MISSING_SERVER_URL_MESSAGE = 'no credentials server URL';
export const MISSING_USERNAME_MESSAGE = 'no credentials username';

/** A failure reported to the caller: its message goes to stdout and the helper exits 1. */
export class HelperError extends Error {
  override name = 'HelperError';
}

export class CredentialsNotFoundError extends HelperError {
  constructor() {
    super(NOT_FOUND_MESSAGE);
  }
}
