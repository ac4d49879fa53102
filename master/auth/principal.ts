// Who makes a request, the interface that finds out, and the ways it can refuse.
import type { IncomingHttpHeaders } from "node:http";
import type { Role } from "../store/types.js";

export interface Principal {
  clientId: string;
  role: Role;
  /** The access token's id (jti), when the request carried one. */
  tokenId?: string;
}

/** The parts of a request authentication looks at. */
export interface Credentials {
  headers: IncomingHttpHeaders;
  ip: string | undefined;
}

export interface Authenticator {
  /** The caller's principal; throws AuthenticationError when there is none. */
  authenticate(request: Credentials): Promise<Principal>;
}

/** No valid credentials: the HTTP layer answers 401. */
export class AuthenticationError extends Error {}

/** Too many requests: the HTTP layer answers 429 with Retry-After. */
export class RateLimitedError extends Error {
  constructor(
    message: string,
    readonly retryAfterS: number,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** With auth off (development only), every request acts as this admin. */
export const DEV_PRINCIPAL: Principal = Object.freeze({ clientId: "dev", role: "admin" as const });

export const devAuthenticator: Authenticator = {
  authenticate: async () => DEV_PRINCIPAL,
};
