// The headers every answer carries, written with the answer's own in one writeHead: a
// setHeader call each cost a JSON answer about as much as the rest of its header work.
import { ServerResponse } from "node:http";
import type { Express, Response } from "express";

/**
 * Every answer (JSON, problems, /metrics, the dashboard's files): never sniffed into
 * another type, framed, loaded by another site's page, cached or sent on as a referrer.
 * An answer that is not the dashboard may load nothing at all. (Strict-Transport-Security
 * belongs to the TLS proxy in front: the master speaks plain HTTP.)
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Content-Security-Policy": "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cache-Control": "no-store",
};

const SECURITY_FLAT = Object.entries(SECURITY_HEADERS).flat();
const SECURITY_NAMES = new Set(Object.keys(SECURITY_HEADERS).map((name) => name.toLowerCase()));

/** Where a request's guards leave headers for its answer (the rate limit's), in res.locals. */
const LATER = "gafferAnswerHeaders";

/**
 * Headers for this request's answer, whichever way it is written (success or problem). The
 * security headers' names are theirs alone: a header left here under one of them is not sent.
 */
export function addAnswerHeaders(res: Response, headers: Record<string, string>): void {
  const earlier = res.locals[LATER] as Record<string, string> | undefined;
  res.locals[LATER] = earlier ? { ...earlier, ...headers } : headers;
}

const nodeWriteHead = ServerResponse.prototype.writeHead;

/**
 * What every answer carries beside its own headers, as Node's flat list of names and values:
 * the security headers, then those left for it (never under a security header's name).
 */
function answerHeaders(res: Response): string[] {
  const head = SECURITY_FLAT.slice();
  const later = res.locals[LATER] as Record<string, string> | undefined;
  if (later) for (const name in later) if (!SECURITY_NAMES.has(name.toLowerCase())) head.push(name, later[name] as string);
  return head;
}

/**
 * Every answer's writeHead adds the headers every answer carries, unless the answer set one
 * of those names itself (the dashboard's files set their own policy and caching).
 */
export function secureAnswers(app: Express): void {
  function writeHead(this: Response, ...args: Parameters<ServerResponse["writeHead"]>): Response {
    const head = answerHeaders(this);
    for (let i = 0; i < head.length; i += 2) {
      const name = head[i] as string;
      if (!this.hasHeader(name)) this.setHeader(name, head[i + 1] as string);
    }
    nodeWriteHead.apply(this, args);
    return this;
  }
  app.response.writeHead = writeHead as Response["writeHead"];
}

/**
 * A JSON answer's head in one write: nothing set before (the usual case), every header goes
 * to Node in one list; otherwise through writeHead above. Headers given to Node this way are
 * not kept on the response: res.getHeaders() is empty after it (nothing of ours reads them
 * once the answer is written; a middleware that wraps writeHead would not see them).
 */
export function writeJsonHead(res: Response, status: number, length: number): void {
  if (res.getHeaderNames().length > 0) {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": length });
    return;
  }
  const head = answerHeaders(res);
  head.push("content-type", "application/json; charset=utf-8", "content-length", String(length));
  nodeWriteHead.call(res, status, head);
}
