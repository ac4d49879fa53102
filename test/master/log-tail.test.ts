// The log tail's cut (master/log-tail.ts), shared by the worker's Tail and the master's
// lastBytes: never more than the limit, never half a character.
import { describe, expect, it } from "vitest";
import { utf8Tail } from "../../master/log-tail.js";

const utf8 = (text: string) => Buffer.from(text, "utf8");

describe("utf8Tail", () => {
  it("keeps everything that fits, and the last bytes of what does not", () => {
    expect(utf8Tail(utf8("abc"), 10)).toBe("abc");
    expect(utf8Tail(utf8("abc"), 3)).toBe("abc");
    expect(utf8Tail(utf8("abcdef"), 3)).toBe("def");
    expect(utf8Tail(utf8("abc"), 0)).toBe("");
    expect(utf8Tail(utf8(""), 5)).toBe("");
  });

  it.each([
    ["a 2-byte character", "é", 2],
    ["a 3-byte character", "€", 3],
    ["a 4-byte character", "😀", 4],
  ])("leaves out %s the cut falls inside, at each byte of it", (_, char, width) => {
    expect(utf8(char)).toHaveLength(width);
    const bytes = utf8(`x${char}yz`);
    // The whole character fits: kept.
    expect(utf8Tail(bytes, width + 2)).toBe(`${char}yz`);
    // The cut falls after its first byte, ..., before its last: the rest of it is dropped.
    for (let inside = 1; inside < width; inside++) {
      const text = utf8Tail(bytes, width + 2 - inside);
      expect(text).toBe("yz");
      expect(text).not.toContain("\uFFFD");
    }
  });

  it("answers no text when the limit falls inside the only character", () => {
    expect(utf8Tail(utf8("😀"), 3)).toBe("");
    expect(utf8Tail(utf8("€"), 1)).toBe("");
  });

  it("cuts a view into a larger buffer by its own bytes, not the buffer's", () => {
    const whole = utf8("ignored€tail");
    const view = whole.subarray(7); // "€tail"
    expect(utf8Tail(view, 6)).toBe("tail");
    expect(utf8Tail(view, 7)).toBe("€tail");
  });
});
