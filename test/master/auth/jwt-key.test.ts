// The token signing key is the same for every master of a database: a fingerprint of it (never
// the key) is kept in the settings; a master with another key refuses to start on a shared
// database unless rotating on purpose, and replaces it with a warning on a database of one master.
import { describe, expect, it, vi } from "vitest";
import { pino } from "pino";
import {
  isRecordedJwtKey,
  JWT_KEY_FINGERPRINT_SETTING,
  jwtKeyFingerprint,
  JwtKeyMismatchError,
  resolveJwtKey,
  SigningKeyWatch,
} from "../../../master/auth/jwt-key.js";
import { dialects, storePerTest, type TestStore } from "../../helpers/store.js";

const KEY_A = "a".repeat(40);
const KEY_B = "b".repeat(40);

describe("jwtKeyFingerprint", () => {
  it("is the same for the same key, differs for another, and does not contain the key", () => {
    expect(jwtKeyFingerprint(KEY_A)).toBe(jwtKeyFingerprint(KEY_A));
    expect(jwtKeyFingerprint(KEY_A)).not.toBe(jwtKeyFingerprint(KEY_B));
    expect(jwtKeyFingerprint(KEY_A)).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(jwtKeyFingerprint(KEY_A)).not.toContain("aaaa");
  });
});

for (const dialect of dialects) {
  describe(`the token signing key on record (${dialect.name})`, () => {
    let t: TestStore;
    storePerTest(dialect, (opened) => (t = opened));
    const settings = () => t.store.settings;

    it("records the fingerprint of the first key, then knows it again", async () => {
      expect(await resolveJwtKey({ configured: KEY_A, settings: settings(), rotate: false, shared: true })).toEqual({ secret: KEY_A, outcome: "recorded" });
      expect(await settings().get(JWT_KEY_FINGERPRINT_SETTING)).toBe(jwtKeyFingerprint(KEY_A));
      expect(await resolveJwtKey({ configured: KEY_A, settings: settings(), rotate: false, shared: true })).toEqual({ secret: KEY_A, outcome: "same" });
      const rows = await t.query("SELECT key, value FROM settings");
      expect(JSON.stringify(rows)).not.toContain(KEY_A);
    });

    it("on a shared database, refuses another key, naming the fix, and changes nothing", async () => {
      await resolveJwtKey({ configured: KEY_A, settings: settings(), rotate: false, shared: true });
      const refused = resolveJwtKey({ configured: KEY_B, settings: settings(), rotate: false, shared: true });
      await expect(refused).rejects.toBeInstanceOf(JwtKeyMismatchError);
      await expect(refused).rejects.toThrow(/the GAFFER_JWT_SECRET the database.s masters were started with.*--rotate-jwt-secret/);
      expect(await settings().get(JWT_KEY_FINGERPRINT_SETTING)).toBe(jwtKeyFingerprint(KEY_A));
      expect(await isRecordedJwtKey(KEY_A, settings())).toBe(true);
    });

    it("on a shared database, rotates on purpose: the new key is on record and the old one is not", async () => {
      await resolveJwtKey({ configured: KEY_A, settings: settings(), rotate: false, shared: true });
      expect(await resolveJwtKey({ configured: KEY_B, settings: settings(), rotate: true, shared: true })).toEqual({ secret: KEY_B, outcome: "rotated" });
      expect(await isRecordedJwtKey(KEY_A, settings())).toBe(false);
      expect(await isRecordedJwtKey(KEY_B, settings())).toBe(true);
      await expect(resolveJwtKey({ configured: KEY_A, settings: settings(), rotate: false, shared: true })).rejects.toBeInstanceOf(JwtKeyMismatchError);
    });

    it("on a database of one master, replaces the key and says so", async () => {
      await resolveJwtKey({ configured: KEY_A, settings: settings(), rotate: false, shared: false });
      expect(await resolveJwtKey({ configured: KEY_B, settings: settings(), rotate: false, shared: false })).toEqual({ secret: KEY_B, outcome: "replaced" });
      expect(await settings().get(JWT_KEY_FINGERPRINT_SETTING)).toBe(jwtKeyFingerprint(KEY_B));
    });

    it("a master without GAFFER_JWT_SECRET uses the generated key and is refused where the others set one, generating none", async () => {
      const generated = await resolveJwtKey({ configured: undefined, settings: settings(), rotate: false, shared: true });
      expect(generated.outcome).toBe("recorded");
      expect(generated.secret.length).toBeGreaterThanOrEqual(32);
      // Started again without the secret: the same generated key.
      expect(await resolveJwtKey({ configured: undefined, settings: settings(), rotate: false, shared: true })).toEqual({ secret: generated.secret, outcome: "same" });
      // One started with a secret of its own is told the others use the generated key.
      await expect(resolveJwtKey({ configured: KEY_A, settings: settings(), rotate: false, shared: true })).rejects.toThrow(/the one generated in the database: start this master without GAFFER_JWT_SECRET/);
    });

    it("a master without GAFFER_JWT_SECRET where the others set one is refused before it generates a key", async () => {
      await resolveJwtKey({ configured: KEY_A, settings: settings(), rotate: false, shared: true });
      await expect(resolveJwtKey({ configured: undefined, settings: settings(), rotate: false, shared: true })).rejects.toThrow(/the key on record was set with GAFFER_JWT_SECRET/);
      expect(await settings().get("jwt_secret")).toBeUndefined();
    });

    it("a database from before fingerprints takes the key of the first master started on it", async () => {
      await settings().set("jwt_secret", KEY_B);
      expect(await resolveJwtKey({ configured: undefined, settings: settings(), rotate: false, shared: true })).toEqual({ secret: KEY_B, outcome: "recorded" });
      expect(await isRecordedJwtKey(KEY_B, settings())).toBe(true);
    });
    it("a running master's watch refuses once another master rotated the key away, and says so once", async () => {
      await resolveJwtKey({ configured: KEY_A, settings: settings(), rotate: false, shared: true });
      const log = pino({ level: "silent" });
      const error = vi.spyOn(log, "error");
      const watch = new SigningKeyWatch({ secret: KEY_A, settings: settings(), log });
      watch.recheck();
      await vi.waitFor(() => expect(watch.refusal()).toBeUndefined());
      await resolveJwtKey({ configured: KEY_B, settings: settings(), rotate: true, shared: true });
      watch.recheck();
      await vi.waitFor(() => expect(watch.refusal()).toMatch(/restart this master with the new GAFFER_JWT_SECRET/));
      watch.recheck();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(error).toHaveBeenCalledTimes(1);
      // Auth off: no key, nothing to watch.
      const off = new SigningKeyWatch({ secret: undefined, settings: settings(), log });
      off.recheck();
      expect(off.refusal()).toBeUndefined();
    });
  });
}
