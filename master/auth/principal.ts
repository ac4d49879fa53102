// Who makes a request, and the interface that finds out.
import type { IncomingHttpHeaders } from "node:http";
import type { Role } from "../store/types.js";

export interface Principal {
  clientId: string;
  role: Role;
}

/** The parts of a request authentication looks at. */
export interface Credentials {
  headers: IncomingHttpHeaders;
  ip: string | undefined;
}

export interface Authenticator {
  /** The caller's principal; throws a 401 problem when there is none. */
  authenticate(request: Credentials): Promise<Principal>;
}

/** With auth off (development only), every request acts as this admin. */
export const DEV_PRINCIPAL: Principal = Object.freeze({ clientId: "dev", role: "admin" as const });

export const devAuthenticator: Authenticator = {
  authenticate: async () => DEV_PRINCIPAL,
};
