// Where the CLI and the worker take a client secret from, and what they warn about (API.md §9).
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ARGUMENT_SECRET_WARNING, plainHttpWarnings, readSecretFile, resolveClientSecret } from "../../worker/credentials.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

afterEach(() => removeTempDirs());

function secretFile(text: string): string {
  const path = join(tempDir(), "secret");
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}

describe("client secret files", () => {
  it("reads the secret without its trailing newline, and only that one", () => {
    expect(readSecretFile(secretFile("gsk_abc\n"))).toBe("gsk_abc");
    expect(readSecretFile(secretFile("gsk_abc\r\n"))).toBe("gsk_abc");
    expect(readSecretFile(secretFile("gsk_abc"))).toBe("gsk_abc");
    expect(readSecretFile(secretFile(" gsk abc \n\n"))).toBe(" gsk abc \n");
  });

  it("says which file it could not read, and why", () => {
    const dir = tempDir();
    expect(() => readSecretFile(join(dir, "missing"))).toThrow(`cannot read the client secret from ${join(dir, "missing")}: no such file`);
    expect(() => readSecretFile(dir)).toThrow(/it is a directory/);
    expect(() => readSecretFile(secretFile("\n"))).toThrow(/is empty/);
    if (process.getuid?.() !== 0) {
      const locked = secretFile("gsk_abc\n");
      chmodSync(locked, 0o000);
      expect(() => readSecretFile(locked)).toThrow(/permission denied/);
    }
  });

  it("takes --client-secret, then --client-secret-file, then GAFFER_CLIENT_SECRET, then GAFFER_CLIENT_SECRET_FILE", () => {
    const file = secretFile("from-file\n");
    const envFile = secretFile("from-env-file\n");
    expect(resolveClientSecret({ clientSecret: "from-flag" }, { GAFFER_CLIENT_SECRET: "from-env" })).toEqual({ secret: "from-flag", warnings: [ARGUMENT_SECRET_WARNING] });
    expect(resolveClientSecret({ clientSecretFile: file }, { GAFFER_CLIENT_SECRET: "from-env" })).toEqual({ secret: "from-file", warnings: [] });
    expect(resolveClientSecret({}, { GAFFER_CLIENT_SECRET: "from-env" })).toEqual({ secret: "from-env", warnings: [] });
    expect(resolveClientSecret({}, { GAFFER_CLIENT_SECRET_FILE: envFile })).toEqual({ secret: "from-env-file", warnings: [] });
    expect(resolveClientSecret({}, {})).toEqual({ secret: undefined, warnings: [] });
    expect(() => resolveClientSecret({ clientSecret: "a", clientSecretFile: file }, {})).toThrow(/not both/);
    expect(() => resolveClientSecret({}, { GAFFER_CLIENT_SECRET: "a", GAFFER_CLIENT_SECRET_FILE: envFile })).toThrow(/both set/);
  });

  it("warns that a secret on the command line is readable from /proc", () => {
    expect(ARGUMENT_SECRET_WARNING).toMatch(/\/proc/);
    expect(ARGUMENT_SECRET_WARNING).toMatch(/--client-secret-file/);
    expect(ARGUMENT_SECRET_WARNING).toMatch(/GAFFER_CLIENT_SECRET/);
  });
});

describe("plain http warnings", () => {
  it("warns about plain http to another host, not https or this machine", () => {
    for (const url of ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "http://127.1.2.3", "https://gaffer.example.com"]) {
      expect(plainHttpWarnings(url)).toEqual([]);
    }
    expect(plainHttpWarnings("http://gaffer.example.com:8080/")).toEqual([expect.stringMatching(/^http:\/\/gaffer\.example\.com:8080 is plain http to another host.*in clear/)]);
    expect(plainHttpWarnings("http://10.0.0.5:8080")).toHaveLength(1);
    expect(plainHttpWarnings("http://[2001:db8::1]:8080")).toHaveLength(1);
  });

  it("looks at each URL of a list", () => {
    expect(plainHttpWarnings("https://a.example.com,http://127.0.0.1:8080,http://b.example.com")).toEqual([expect.stringMatching(/b\.example\.com/)]);
  });
});

