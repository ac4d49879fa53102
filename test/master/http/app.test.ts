// Every answer of the master carries the security headers, not only the dashboard's files;
// with auth off, it answers only requests addressed to localhost or a loopback address.
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addAnswerHeaders, secureAnswers, writeJsonHead } from "../../../master/http/headers.js";
import type { MasterInternals } from "../../../master/index.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
let guarded: MasterInternals;

beforeAll(async () => {
  master = await startTestMaster();
  guarded = await startTestMaster({ auth: "on", jwtSecret: "s".repeat(32) });
});
afterAll(async () => {
  await master.close();
  await guarded.close();
  removeTempDirs();
});

function expectSecurityHeaders(headers: Headers, what: string): void {
  expect(headers.get("x-content-type-options"), what).toBe("nosniff");
  expect(headers.get("referrer-policy"), what).toBe("no-referrer");
  expect(headers.get("x-frame-options"), what).toBe("DENY");
  expect(headers.get("content-security-policy"), what).toMatch(/frame-ancestors 'none'/);
  expect(headers.get("cross-origin-resource-policy"), what).toBe("same-origin");
}

describe("security headers", () => {
  it("come with JSON answers, problem documents, /metrics and /openapi.json, which are never cached", async () => {
    const answers = {
      "GET /health": await http(master.url, "GET", "/health"),
      "GET /metrics": await http(master.url, "GET", "/metrics"),
      "GET /openapi.json": await http(master.url, "GET", "/openapi.json"),
      "POST /api/v1/jobs": await http(master.url, "POST", "/api/v1/jobs", { type: "headers" }),
      "400 bad JSON": await http(master.url, "POST", "/api/v1/jobs", "{not json"),
      "404 route": await http(master.url, "GET", "/api/v1/nowhere"),
      "401 no token": await http(guarded.url, "GET", "/api/v1/jobs"),
      "401 bad login": await http(guarded.url, "POST", "/api/v1/auth/token", { client_id: "nobody", client_secret: "wrong" }),
    };
    expect(Object.values(answers).map((answer) => answer.status)).toEqual([200, 200, 200, 201, 400, 404, 401, 401]);
    for (const [what, answer] of Object.entries(answers)) {
      expectSecurityHeaders(answer.headers, what);
      expect(answer.headers.get("content-security-policy"), what).toMatch(/default-src 'none'/);
      expect(answer.headers.get("cache-control"), what).toBe("no-store");
    }
  });

  it("come with the dashboard's page, under its own policy and caching", async () => {
    const page = await fetch(`${master.url}/`);
    if (page.status === 404) return; // the dashboard is not built (npm run build)
    expect(page.status).toBe(200);
    expectSecurityHeaders(page.headers, "GET /");
    expect(page.headers.get("content-security-policy")).toMatch(/default-src 'self'/);
    expect(page.headers.get("cache-control")).toBe("no-cache");
    const script = /src="\.?\/?(assets\/[^"]+\.js)"/.exec(await page.text())?.[1];
    if (!script) throw new Error("no script in the dashboard's page");
    const asset = await fetch(`${master.url}/${script}`);
    expect(asset.status).toBe(200);
    expectSecurityHeaders(asset.headers, script);
    expect(asset.headers.get("cache-control")).toMatch(/immutable/);
    // A range past its end is refused with a problem, which no cache may keep in the asset's place.
    const refused = await fetch(`${master.url}/${script}`, { headers: { range: "bytes=999999999-" } });
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(refused.headers.get("content-type")).toMatch(/problem\+json/);
    expectSecurityHeaders(refused.headers, "refused range");
    expect(refused.headers.get("cache-control")).toBe("no-store");
    expect(refused.headers.get("content-range")).toBeNull();
    expect(refused.headers.get("etag")).toBeNull();
  });

  it("come with Express's own answers to OPTIONS and HEAD", async () => {
    for (const method of ["OPTIONS", "HEAD"]) {
      const answer = await fetch(`${master.url}/api/v1/jobs`, { method });
      await answer.text();
      expect(answer.status, method).toBe(200);
      expectSecurityHeaders(answer.headers, method);
      expect(answer.headers.get("cache-control"), method).toBe("no-store");
    }
  });

  it("go with a JSON answer once each, beside the guard's and the answer's own headers", async () => {
    const app = express();
    app.disable("x-powered-by"); // as the master: no header set before the answer's, its one-write path
    secureAnswers(app);
    app.get("/fast", (_req, res) => {
      addAnswerHeaders(res, { "RateLimit-Limit": "5", "Cache-Control": "max-age=60" });
      writeJsonHead(res, 200, 2);
      res.end("{}");
    });
    app.get("/own", (_req, res) => {
      addAnswerHeaders(res, { "RateLimit-Limit": "5" });
      res.setHeader("Location", "/elsewhere");
      writeJsonHead(res, 201, 2);
      res.end("{}");
    });
    const server = app.listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      for (const [path, status] of [["/fast", 200], ["/own", 201]] as const) {
        const answer = await rawGet(`http://127.0.0.1:${port}`, path);
        expect(answer.status, path).toBe(status);
        const names = answer.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase());
        expect(new Set(names).size, `${path}: ${names.join(", ")}`).toBe(names.length);
        expect(answer.headers["ratelimit-limit"], path).toBe("5");
        // The security headers' names are theirs: the guard cannot make an answer cacheable.
        expect(answer.headers["cache-control"], path).toBe("no-store");
        expect(answer.headers["content-security-policy"], path).toMatch(/default-src 'none'/);
        expect(answer.headers["content-type"], path).toBe("application/json; charset=utf-8");
      }
      expect((await rawGet(`http://127.0.0.1:${port}`, "/own")).headers.location).toBe("/elsewhere");
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

interface RawAnswer {
  status: number;
  type: string;
  body: string;
  /** Names and values as sent, repeats kept (fetch joins repeated headers into one). */
  rawHeaders: string[];
  headers: Record<string, string | string[] | undefined>;
}

/** A GET through node:http: the answer's raw header list, and a Host header of our choosing (fetch would not send one). */
function rawGet(url: string, path = "/", host?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const req = request({ hostname, port, path, headers: host === undefined ? {} : { host } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body, rawHeaders: res.rawHeaders, headers: res.headers }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

describe("routes", () => {
  it("answer OPTIONS on an API path with the methods it takes, not 404", async () => {
    const answer = await fetch(`${master.url}/api/v1/jobs`, { method: "OPTIONS" });
    await answer.text();
    expect(answer.status).toBe(200);
    expect(answer.headers.get("allow")).toBe("GET, HEAD, POST");
  });
});

describe("with auth off", () => {
  it("refuses a request addressed to another name (DNS rebinding) with a 403 problem", async () => {
    const port = new URL(master.url).port;
    for (const path of ["/health", "/api/v1/jobs", "/"]) {
      const refused = await rawGet(master.url, path, `rebind.example:${port}`);
      expect(refused.status, path).toBe(403);
      expect(refused.type).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(refused.body)).toMatchObject({ status: 403, code: "forbidden" });
    }
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, "localhost"]) {
      expect((await rawGet(master.url, "/api/v1/jobs", host)).status, host).toBe(200);
    }
  });

  it("is the only case: with auth on, any Host is answered (tokens guard the API)", async () => {
    expect((await rawGet(guarded.url, "/health", "gaffer.example.com")).status).toBe(200);
  });
});
