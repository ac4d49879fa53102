// Client ids and secrets: secrets are 32 random bytes, stored only as scrypt hashes, compared in constant time.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";
import type { Role } from "../store/types.js";

export const SECRET_BYTES = 32;
const SCRYPT: ScryptOptions = { N: 16_384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_BYTES = 32;

function scryptAsync(secret: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, KEY_BYTES, options, (error, key) => (error ? reject(error) : resolve(key))),
  );
}

/** A readable, unguessable client id: `worker-3f9a…`. */
export function newClientId(role: Role): string {
  return `${role}-${randomBytes(8).toString("hex")}`;
}

/** 32 random bytes, base64url, with a prefix that secret scanners can spot. */
export function newClientSecret(): string {
  return `gsk_${randomBytes(SECRET_BYTES).toString("base64url")}`;
}

/** `scrypt$N$r$p$salt$key`, all that is stored of a secret. Runs off the event loop. */
export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(secret, salt, SCRYPT);
  return ["scrypt", SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

/** A hash of nothing, checked when the client does not exist, so that both cases take the same time. */
const DECOY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

export async function verifySecret(secret: string, stored: string | null | undefined): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = (stored ?? DECOY).split("$");
  if (scheme !== "scrypt" || !salt || !key) return false;
  const expected = Buffer.from(key, "base64url");
  const actual = await scryptAsync(secret, Buffer.from(salt, "base64url"), {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: SCRYPT.maxmem,
  });
  return actual.length === expected.length && timingSafeEqual(actual, expected) && stored !== undefined && stored !== null;
}
