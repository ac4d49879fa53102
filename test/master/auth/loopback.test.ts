// With auth off, only names of this machine pass: localhost and loopback addresses, never a name that resolves to one.
import { describe, expect, it } from "vitest";
import { isLoopbackHostHeader, isLoopbackName } from "../../../master/auth/loopback.js";

describe("isLoopbackName", () => {
  it("takes localhost and loopback addresses", () => {
    for (const name of ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) {
      expect(isLoopbackName(name), name).toBe(true);
    }
  });

  it("refuses every other address and name", () => {
    for (const name of ["0.0.0.0", "::", "", "10.0.0.1", "192.168.1.2", "::ffff:10.0.0.1", "example.com", "localhost.example.com", "127.0.0.1.nip.io", "my-laptop"]) {
      expect(isLoopbackName(name), name).toBe(false);
    }
  });
});

describe("isLoopbackHostHeader", () => {
  it("takes a loopback name with or without a port", () => {
    for (const host of ["localhost", "localhost:8080", "127.0.0.1:8080", "[::1]", "[::1]:8080"]) {
      expect(isLoopbackHostHeader(host), host).toBe(true);
    }
  });

  it("refuses other names, odd shapes and no Host at all", () => {
    for (const host of [undefined, "", "evil.example:8080", "evil.example@127.0.0.1", "127.0.0.1:8080:1", "::1", "[::1", "localhost:port", "127.0.0.1 evil", "[10::1]:80"]) {
      expect(isLoopbackHostHeader(host), String(host)).toBe(false);
    }
  });
});
