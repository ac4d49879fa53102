// Which key signs access tokens, and that every master of a database signs with the same one:
// a fingerprint of the key in use (never the key) is kept in the settings table. Behind a load
// balancer, a master with another key would refuse the others' tokens at random (API.md §12).
import { createHmac, randomBytes } from "node:crypto";
import type { Logger } from "../log.js";
import type { SettingsStore } from "../store/types.js";

const JWT_SECRET_SETTING = "jwt_secret";
export const JWT_KEY_FINGERPRINT_SETTING = "jwt_key_fingerprint";
const FINGERPRINT_LABEL = "gaffer: fingerprint of the JWT signing key, v1";

/** HMAC-SHA256 of a fixed label under the key: equal keys give equal fingerprints, and it does not give the key away. */
export function jwtKeyFingerprint(secret: string): string {
  return `hmac-sha256:${createHmac("sha256", secret).update(FINGERPRINT_LABEL).digest("hex")}`;
}

/** A master whose key is not the one the database's masters sign with, started without --rotate-jwt-secret. */
export class JwtKeyMismatchError extends Error {}

export interface ResolveJwtKeyParams {
  /** GAFFER_JWT_SECRET, if set. */
  configured: string | undefined;
  settings: SettingsStore;
  /** --rotate-jwt-secret: this master's key becomes the database's, on purpose. */
  rotate: boolean;
  /** Several masters may share the database (PostgreSQL): a different key refuses to start instead of replacing the old one. */
  shared: boolean;
}

export interface ResolvedJwtKey {
  secret: string;
  /**
   * recorded: no key was on record (a new database, or one from before fingerprints);
   * same: the key on record; rotated: replaced on purpose; replaced: replaced on a database
   * of one master (SQLite), where the old key's tokens now fail but no other master disagrees.
   */
  outcome: "recorded" | "same" | "rotated" | "replaced";
}

/**
 * The key this master signs with (GAFFER_JWT_SECRET, else one generated once and kept in the
 * settings table), checked against the database's fingerprint and recorded there. Throws
 * JwtKeyMismatchError, naming the fix, when it differs on a shared database without `rotate`.
 */
export async function resolveJwtKey(params: ResolveJwtKeyParams): Promise<ResolvedJwtKey> {
  const { settings } = params;
  const recorded = await settings.get(JWT_KEY_FINGERPRINT_SETTING);
  const generated = await settings.get(JWT_SECRET_SETTING);
  // Refused before a key is generated: a master that will not start writes nothing.
  const secret = params.configured ?? generated ?? (await keyToGenerate(params, recorded));
  const fingerprint = jwtKeyFingerprint(secret);
  if (recorded === undefined) {
    // Masters starting at once on a new database: the first one's fingerprint is kept.
    const kept = await settings.setIfAbsent(JWT_KEY_FINGERPRINT_SETTING, fingerprint);
    if (kept === fingerprint) return { secret, outcome: "recorded" };
    return differs(params, secret, kept, generated);
  }
  if (recorded === fingerprint) return { secret, outcome: "same" };
  return differs(params, secret, recorded, generated);
}

async function keyToGenerate(params: ResolveJwtKeyParams, recorded: string | undefined): Promise<string> {
  if (recorded !== undefined && params.shared && !params.rotate) {
    throw new JwtKeyMismatchError(mismatchMessage({ configured: false, clusterUsesGenerated: false }));
  }
  // Masters starting at once on one database (PostgreSQL) all keep the first one's key.
  return params.settings.setIfAbsent(JWT_SECRET_SETTING, randomBytes(48).toString("base64url"));
}

async function differs(params: ResolveJwtKeyParams, secret: string, recorded: string, generated: string | undefined): Promise<ResolvedJwtKey> {
  if (params.rotate || !params.shared) {
    await params.settings.set(JWT_KEY_FINGERPRINT_SETTING, jwtKeyFingerprint(secret));
    return { secret, outcome: params.rotate ? "rotated" : "replaced" };
  }
  const clusterUsesGenerated = generated !== undefined && jwtKeyFingerprint(generated) === recorded;
  throw new JwtKeyMismatchError(mismatchMessage({ configured: params.configured !== undefined, clusterUsesGenerated }));
}

function mismatchMessage(facts: { configured: boolean; clusterUsesGenerated: boolean }): string {
  const fix = facts.configured
    ? facts.clusterUsesGenerated
      ? "the key on record is the one generated in the database: start this master without GAFFER_JWT_SECRET"
      : "start this master with the GAFFER_JWT_SECRET the database's masters were started with"
    : "the key on record was set with GAFFER_JWT_SECRET: start this master with that GAFFER_JWT_SECRET";
  return (
    `GAFFER_JWT_SECRET: this master's token signing key is not the one on record in this database ` +
    `(tokens of the masters that use it would get 401 here, and this master's there); ${fix}. ` +
    `To change the key on purpose: stop every master, start one with the new GAFFER_JWT_SECRET and --rotate-jwt-secret ` +
    `(GAFFER_ROTATE_JWT_SECRET=on), then the others with the new GAFFER_JWT_SECRET; tokens signed with the old key get 401 and clients log in again`
  );
}

/** Whether `secret` is still the key on record (another master may have rotated it since this one started). */
export async function isRecordedJwtKey(secret: string, settings: SettingsStore): Promise<boolean> {
  const recorded = await settings.get(JWT_KEY_FINGERPRINT_SETTING);
  return recorded === undefined || recorded === jwtKeyFingerprint(secret);
}

/** What a master says of its key at start-up: the outcome of resolveJwtKey, and a rotation flag left on. */
export function logJwtKeyOutcome(log: Logger, outcome: ResolvedJwtKey["outcome"], rotate: boolean): void {
  if (outcome === "rotated") {
    log.warn(
      { event: "jwt.rotated" },
      "the token signing key of this database changed (--rotate-jwt-secret): tokens signed with the old key get 401; start any other master with this one's GAFFER_JWT_SECRET (or without one, when this one has none), and remove --rotate-jwt-secret from later starts",
    );
  } else if (rotate) {
    log.warn(
      { event: "jwt.rotate_unused" },
      "--rotate-jwt-secret (GAFFER_ROTATE_JWT_SECRET) is set but the key did not change: remove it, or any master started with it and another key will replace the database's key",
    );
  } else if (outcome === "replaced") {
    log.warn({ event: "jwt.replaced" }, "the token signing key changed since this database's last master (GAFFER_JWT_SECRET): tokens issued before get 401, and clients log in again");
  }
}

const STALE_KEY =
  "this master's token signing key is no longer this database's (another master changed it with --rotate-jwt-secret): restart this master with the new GAFFER_JWT_SECRET";

/**
 * Whether this master's key is still the database's: another master may rotate it while this
 * one runs. Then this one answers 503 to every authenticated request, to logins and on /ready (a
 * load balancer passes it over; a client tries another master instead of dropping its token on
 * a 401), and says why, until restarted with the new key.
 */
export class SigningKeyWatch {
  private current = true;

  constructor(private readonly params: { secret: string | undefined; settings: SettingsStore; log: Logger }) {}

  /** Why this master must not serve now; undefined while its key is the database's (or auth is off). */
  refusal(): string | undefined {
    return this.current ? undefined : STALE_KEY;
  }

  /** Look at the database's fingerprint again: after a settings change, and once listening for them. */
  recheck(): void {
    const { secret, settings, log } = this.params;
    if (secret === undefined) return;
    isRecordedJwtKey(secret, settings).then(
      (recorded) => {
        const turned = this.current && !recorded;
        this.current = recorded;
        if (turned) log.error({ event: "jwt.key_mismatch" }, `${STALE_KEY}; answering 503 to requests, logins and /ready`);
      },
      (error: unknown) => log.warn({ err: (error as Error).message }, "could not read the token signing key's fingerprint"),
    );
  }
}
