// What every store keeps as sent: found in a JSON text as JSON.stringify writes it, without a walk.
import { describe, expect, it } from "vitest";
import { cleanText, isStorableText, jsonHasUnstorableText, NUMBER_OUT_OF_RANGE, unstorableJson, UNSTORABLE_TEXT } from "../../../master/http/storable.js";

const scanned = (value: unknown) => jsonHasUnstorableText(JSON.stringify(value));

describe("jsonHasUnstorableText", () => {
  it("finds a NUL or an unpaired surrogate in a value or a key, at any depth", () => {
    for (const value of ["\u0000", "a\ud800", "\udc00b", "\ud800\ud800\udc00", ["x", { deep: ["\u0000"] }], { "\ud83d": 1 }, { "k\u0000": true }]) {
      expect(scanned(value), JSON.stringify(value)).toBe(true);
    }
  });

  it("passes paired surrogates, other control characters, and escaped backslashes before a u", () => {
    // "\\u0000" is a backslash and the letters u0000; "\\\\" then "ud800" likewise.
    for (const value of ["😀", "\ud83d\ude00", "\u0001\u001f\n\t", "\\u0000", "\\\\ud800", "\\", "u0000", { "\\u0000": "\\ud800" }, "é€"]) {
      expect(scanned(value), JSON.stringify(value)).toBe(false);
    }
  });

  it("finds the NUL after an escaped backslash (a backslash and a NUL)", () => {
    expect(scanned("\\\u0000")).toBe(true);
    expect(scanned("\\\\\ud800")).toBe(true);
  });
});

describe("unstorableJson", () => {
  it("names a number JSON cannot write, and only then walks the value", () => {
    for (const text of ['{"a":1e400}', "[-1e400]", '{"a":[{"b":1e309}]}']) {
      const value: unknown = JSON.parse(text);
      expect(unstorableJson(value, JSON.stringify(value)), text).toBe(NUMBER_OUT_OF_RANGE);
    }
    for (const text of ['{"a":null}', '{"a":1.7976931348623157e308}', '"null"', "5e-400"]) {
      const value: unknown = JSON.parse(text);
      expect(unstorableJson(value, JSON.stringify(value)), text).toBeUndefined();
    }
    expect(unstorableJson({ a: "\u0000" }, JSON.stringify({ a: "\u0000" }))).toBe(UNSTORABLE_TEXT);
  });
});

describe("cleanText", () => {
  it("drops NUL characters and replaces unpaired surrogates, keeping everything else", () => {
    expect(cleanText("a\u0000b\ud800c\udc00")).toBe("ab\ufffdc\ufffd");
    expect(cleanText("😀 ok\n")).toBe("😀 ok\n");
    expect(isStorableText(cleanText("\u0000\ud800\u0000"))).toBe(true);
  });
});

describe("unstorableJson on keys JSON.parse makes own", () => {
  it("finds a number past 1e308 under a __proto__ key and in deep arrays", () => {
    for (const text of ['{"__proto__":{"n":1e400}}', `${"[".repeat(60)}1e400${"]".repeat(60)}`]) {
      const value: unknown = JSON.parse(text);
      expect(unstorableJson(value, JSON.stringify(value)), text).toBe(NUMBER_OUT_OF_RANGE);
    }
  });
});
