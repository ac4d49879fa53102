import { describe, expect, it } from "vitest";
import { redactUrl } from "../../master/index.js";

describe("redactUrl", () => {
  it("hides a database URL's password and keeps the rest", () => {
    expect(redactUrl("postgres://gaffer:s3cret@db.example:5432/gaffer")).toBe("postgres://gaffer:***@db.example:5432/gaffer");
    expect(redactUrl("postgres://gaffer@127.0.0.1/gaffer")).toBe("postgres://gaffer@127.0.0.1/gaffer");
    expect(redactUrl("postgres://gaffer@db/gaffer?password=s3cret&sslmode=require")).toBe("postgres://gaffer@db/gaffer?password=***&sslmode=require");
    expect(redactUrl("not a url")).toBe("(a database URL)");
  });
});
