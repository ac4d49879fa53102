// Access tokens: HS256 JWTs (sub, role, jti, exp) whose SHA-256 is kept in auth_tokens.
// Checking one costs no database write: a short in-memory cache, keyed by the token itself,
// answers repeat uses without hashing or verifying it again, and last_used_at is written at
// most once a minute per token.
import { createHash, randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import type { Logger } from "pino";
import { ROLES, type Clock, type Role, type Store } from "../store/types.js";
import { AuthenticationError, type Authenticator, type Credentials, type Principal } from "./principal.js";

/** How long a checked token is trusted without looking at the database again (revocation here clears it at once). */
export const TOKEN_CACHE_MS = 30_000;
/** last_used_at is written at most this often per token. */
export const TOUCH_INTERVAL_MS = 60_000;
const MAX_CACHED_TOKENS = 10_000;
/** Every so many checks that miss the cache, the entries past their time are dropped. */
const PURGE_EVERY = 256;

export interface IssuedToken {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  expires_at: string;
}

interface CachedGrant {
  principal: Principal;
  expiresAtMs: number;
  checkedAtMs: number;
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export interface TokenServiceParams {
  store: Store;
  secret: string;
  ttlS: number;
  clock: Clock;
  log: Logger;
  /** Called for each refused token (metrics). */
  onInvalid?: (reason: string) => void;
}

export class TokenService implements Authenticator {
  /** Grants by token: a hit costs a map lookup (the SHA-256 is for the database's look-up only). */
  private readonly cache = new Map<string, CachedGrant>();
  /** Checks that missed the cache, counted to purge it now and then. */
  private checks = 0;
  private readonly touched = new Map<string, number>();

  constructor(private readonly params: TokenServiceParams) {}

  async issue(client: { id: string; role: Role }): Promise<IssuedToken> {
    const now = this.params.clock.now();
    const issuedAt = Math.floor(now.getTime() / 1000);
    const expiresAtS = issuedAt + Math.round(this.params.ttlS);
    const jti = randomUUID();
    const token = jwt.sign({ sub: client.id, role: client.role, jti, iat: issuedAt, exp: expiresAtS }, this.params.secret, {
      algorithm: "HS256",
    });
    const expiresAt = new Date(expiresAtS * 1000);
    await this.params.store.tokens.issue({ id: jti, clientId: client.id, tokenHash: sha256(token), expiresAt });
    return { access_token: token, token_type: "Bearer", expires_in: expiresAtS - issuedAt, expires_at: expiresAt.toISOString() };
  }

  async authenticate(request: Credentials): Promise<Principal> {
    const header = request.headers.authorization;
    if (!header) throw this.refuse("missing", "send Authorization: Bearer <access_token> (POST /api/v1/auth/token issues one)");
    const match = /^Bearer\s+([A-Za-z0-9_.-]+)$/i.exec(header.trim());
    if (!match?.[1]) throw this.refuse("malformed", "the Authorization header must be: Bearer <access_token>");
    return this.check(match[1]);
  }

  /** The principal of a token, or an AuthenticationError saying why not. */
  async check(token: string): Promise<Principal> {
    const nowMs = this.params.clock.now().getTime();
    const cached = this.cache.get(token);
    if (cached && nowMs < cached.expiresAtMs && nowMs - cached.checkedAtMs < TOKEN_CACHE_MS) {
      this.touch(cached.principal.tokenId, nowMs);
      return cached.principal;
    }
    // Keyed by the token itself, the cache holds live credentials: none kept past its time.
    if (cached) this.cache.delete(token);
    if (++this.checks % PURGE_EVERY === 0) this.purge(nowMs);
    let claims: jwt.JwtPayload;
    try {
      const verified = jwt.verify(token, this.params.secret, { algorithms: ["HS256"], clockTimestamp: Math.floor(nowMs / 1000) });
      if (typeof verified === "string") throw new Error("not a JSON payload");
      claims = verified;
    } catch (error) {
      if (error instanceof jwt.TokenExpiredError) throw this.refuse("expired", "the access token expired; get a new one");
      throw this.refuse("invalid", "the access token is not valid");
    }
    if (typeof claims.sub !== "string" || typeof claims.jti !== "string" || !ROLES.includes(claims.role as Role)) {
      throw this.refuse("invalid", "the access token is not valid");
    }
    const grant = await this.params.store.tokens.findByHash(sha256(token));
    if (!grant || grant.id !== claims.jti || grant.client_id !== claims.sub) {
      throw this.refuse("unknown", "the access token is not one this master issued");
    }
    if (grant.revoked_at !== null) throw this.refuse("revoked", "the access token was revoked");
    if (grant.client_disabled_at !== null) throw this.refuse("disabled", "the client of this access token is disabled");
    const principal: Principal = { clientId: grant.client_id, role: grant.role, tokenId: grant.id };
    if (this.cache.size >= MAX_CACHED_TOKENS) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(token, { principal, expiresAtMs: new Date(grant.expires_at).getTime(), checkedAtMs: nowMs });
    this.touch(grant.id, nowMs);
    return principal;
  }

  /** Drop every entry past its time (tokens not used again would stay until evicted). */
  private purge(nowMs: number): void {
    for (const [token, entry] of this.cache) {
      if (nowMs >= entry.expiresAtMs || nowMs - entry.checkedAtMs >= TOKEN_CACHE_MS) this.cache.delete(token);
    }
  }

  /** Revoked tokens and disabled clients stop working at once on this master. */
  forget(match: { tokenIds?: string[]; clientId?: string }): void {
    const tokenIds = new Set(match.tokenIds ?? []);
    for (const [token, entry] of this.cache) {
      if ((entry.principal.tokenId && tokenIds.has(entry.principal.tokenId)) || entry.principal.clientId === match.clientId) {
        this.cache.delete(token);
      }
    }
  }

  /** Tokens were revoked somewhere in the cluster: every cached grant is checked again at its next use. */
  forgetAll(): void {
    this.cache.clear();
  }

  private touch(tokenId: string | undefined, nowMs: number): void {
    if (!tokenId) return;
    const last = this.touched.get(tokenId) ?? 0;
    if (nowMs - last < TOUCH_INTERVAL_MS) return;
    this.touched.set(tokenId, nowMs);
    if (this.touched.size > MAX_CACHED_TOKENS) this.touched.delete(this.touched.keys().next().value as string);
    this.params.store.tokens.touch({ id: tokenId, at: new Date(nowMs) }).catch((error: unknown) => {
      // Recording use is bookkeeping: a read-only database must not turn it into a refused request.
      this.params.log.warn({ event: "auth.touch_failed", err: (error as Error).message });
    });
  }

  private refuse(reason: string, message: string): AuthenticationError {
    this.params.onInvalid?.(reason);
    return new AuthenticationError(message);
  }
}
