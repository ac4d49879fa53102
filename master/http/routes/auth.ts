// /api/v1/auth, /api/v1/clients, /api/v1/tokens: logging in, and managing API clients and their tokens.
import { createClient } from "../../auth/clients.js";
import type { FailedLoginLog } from "../../auth/failed-logins.js";
import { RateLimitedError } from "../../auth/principal.js";
import type { LoginLimiter, SecretCheckSlots } from "../../auth/login-limits.js";
import { verifySecret } from "../../auth/secrets.js";
import type { TokenService } from "../../auth/tokens.js";
import type { ClientWithSecret } from "../../store/types.js";
import type { HttpDeps } from "../deps.js";
import { notFound, problemSchema, unauthorized, unavailable } from "../problem.js";
import { created, ok, route, type Route } from "../route.js";
import {
  clientSchema,
  createClientSchema,
  idParams,
  listClientsQuery,
  listTokensQuery,
  meSchema,
  newClientSchema,
  pageSchema,
  tokenRequestSchema,
  tokenResponseSchema,
  tokenSchema,
} from "../schemas.js";
import { problemResponses } from "./common.js";

/** A login's body is read before any limiter runs, and is two short strings: more is refused with 413 (API.md §4). */
export const MAX_LOGIN_BODY_BYTES = 4096;

export interface AuthDeps {
  /** Absent when auth is off: tokens cannot be issued then. */
  tokens: TokenService | undefined;
  loginLimiter: LoginLimiter;
  /** Bounds the scrypt work logins put on libuv's thread pool. */
  secretChecks: SecretCheckSlots;
  failedLogins: FailedLoginLog;
  /** Why this master must not issue tokens now (its signing key is no longer the database's); undefined: it may. */
  refusal?: () => string | undefined;
}

/** The secret against the client's hash (a decoy's when there is no client), in a slot; `refund` when refused one. */
async function checkSecret(auth: AuthDeps, secret: string, client: ClientWithSecret | undefined, refund: () => Promise<void>): Promise<boolean> {
  try {
    return await auth.secretChecks.run(() => verifySecret(secret, client?.secret_hash));
  } catch (error) {
    if (error instanceof RateLimitedError) await refund();
    throw error;
  }
}

export function authRoutes(deps: HttpDeps, auth: AuthDeps): Route[] {
  const { store } = deps;
  return [
    route(
      {
        method: "post",
        path: "/api/v1/auth/token",
        summary: "Exchange a client id and secret for an access token",
        tag: "auth",
        auth: "public",
        body: tokenRequestSchema,
        maxBodyBytes: MAX_LOGIN_BODY_BYTES,
        responses: {
          200: { description: "An access token", schema: tokenResponseSchema },
          400: { description: "Invalid request", schema: problemSchema },
          401: { description: "Wrong or disabled credentials", schema: problemSchema },
          413: { description: "A body over 4 KiB", schema: problemSchema },
          429: { description: "Too many failed logins", schema: problemSchema },
        },
      },
      async ({ body, req }) => {
        if (!auth.tokens) throw unavailable("auth is off on this master (GAFFER_AUTH=off): no tokens are issued or needed");
        const refused = auth.refusal?.();
        if (refused !== undefined) throw unavailable(refused);
        const address = req.ip ?? "unknown";
        let client: ClientWithSecret | undefined;
        let good: boolean;
        try {
          // Counted before the secret is checked (API.md §4): a failure keeps its count.
          await auth.loginLimiter.attempt(body.client_id, address);
          client = await store.clients.get(body.client_id);
          good = await checkSecret(auth, body.client_secret, client, () => auth.loginLimiter.refund(body.client_id, address));
        } catch (error) {
          if (error instanceof RateLimitedError) deps.metrics.rateLimited.inc({ kind: "logins" });
          throw error;
        }
        if (!client || !good || client.disabled_at !== null) {
          await auth.failedLogins.record(body.client_id, address);
          throw unauthorized("invalid client credentials");
        }
        await auth.loginLimiter.succeeded(body.client_id, address);
        const token = await auth.tokens.issue(client);
        deps.metrics.tokensIssued.inc();
        deps.log.info({ event: "auth.token_issued", clientId: client.id, expiresAt: token.expires_at });
        return ok(token);
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/auth/me",
        summary: "Who the caller is: client id, name and role",
        tag: "auth",
        auth: ["admin", "client", "worker"],
        responses: { 200: { description: "The caller", schema: meSchema }, ...problemResponses },
      },
      async ({ principal }) => {
        const client = await store.clients.get(principal.clientId);
        return ok({ client_id: principal.clientId, name: client?.name ?? principal.clientId, role: principal.role, auth: auth.tokens ? "on" : "off" });
      },
    ),
    route(
      {
        method: "post",
        path: "/api/v1/auth/revoke",
        summary: "Revoke the access token that makes this call",
        tag: "auth",
        auth: ["admin", "client", "worker"],
        responses: { 200: { description: "The revoked token", schema: tokenSchema }, ...problemResponses },
      },
      async ({ principal }) => {
        if (!principal.tokenId) throw notFound("access token");
        const outcome = await store.tokens.revoke({ id: principal.tokenId, actor: principal.clientId });
        if (!outcome.ok) throw notFound("access token");
        auth.tokens?.forget({ tokenIds: [outcome.token.id] });
        deps.log.info({ event: "token.revoked", tokenId: outcome.token.id, clientId: principal.clientId });
        return ok(outcome.token);
      },
    ),
    route(
      {
        method: "post",
        path: "/api/v1/clients",
        summary: "Create an API client; its secret is shown only in this answer",
        tag: "auth",
        auth: ["admin"],
        body: createClientSchema,
        responses: { 201: { description: "The client, with its secret", schema: newClientSchema }, ...problemResponses },
      },
      async ({ body, principal }) => {
        const client = await createClient(store, { name: body.name, role: body.role, actor: principal.clientId });
        deps.log.info({ event: "client.created", clientId: client.id, role: client.role });
        return created(client);
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/clients",
        summary: "List API clients",
        tag: "auth",
        auth: ["admin"],
        query: listClientsQuery,
        responses: { 200: { description: "A page of clients", schema: pageSchema(clientSchema) }, ...problemResponses },
      },
      async ({ query }) =>
        ok(await store.clients.list({ limit: query.limit, cursor: query.cursor, includeDisabled: query.include_disabled === "true" })),
    ),
    route(
      {
        method: "delete",
        path: "/api/v1/clients/:id",
        summary: "Disable a client and revoke its tokens",
        tag: "auth",
        auth: ["admin"],
        responses: { 200: { description: "The disabled client", schema: clientSchema }, ...problemResponses },
      },
      async ({ params, principal }) => {
        const outcome = await store.clients.disable({ id: idParams.parse(params).id, actor: principal.clientId });
        if (!outcome.ok) throw notFound("client");
        auth.tokens?.forget({ clientId: outcome.client.id, tokenIds: outcome.revoked });
        deps.log.info({ event: "client.disabled", clientId: outcome.client.id, tokens: outcome.revoked.length });
        return ok(outcome.client);
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/tokens",
        summary: "List issued access tokens (never their values)",
        tag: "auth",
        auth: ["admin"],
        query: listTokensQuery,
        responses: { 200: { description: "A page of tokens", schema: pageSchema(tokenSchema) }, ...problemResponses },
      },
      async ({ query }) => ok(await store.tokens.list({ limit: query.limit, cursor: query.cursor, clientId: query.client_id })),
    ),
    route(
      {
        method: "delete",
        path: "/api/v1/tokens/:id",
        summary: "Revoke an access token",
        tag: "auth",
        auth: ["admin"],
        responses: { 200: { description: "The revoked token", schema: tokenSchema }, ...problemResponses },
      },
      async ({ params, principal }) => {
        const outcome = await store.tokens.revoke({ id: idParams.parse(params).id, actor: principal.clientId });
        if (!outcome.ok) throw notFound("token");
        auth.tokens?.forget({ tokenIds: [outcome.token.id] });
        deps.log.info({ event: "token.revoked", tokenId: outcome.token.id });
        return ok(outcome.token);
      },
    ),
  ];
}
