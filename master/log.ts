// Logs are events: one JSON line each with an `event` name (the audit log's names), pretty in a terminal.
import { pino, type Logger } from "pino";
import pretty from "pino-pretty";

export type { Logger } from "pino";

export function createLogger(params: { level: string; pretty?: boolean; name?: string }): Logger {
  const options = { level: params.level, base: { name: params.name ?? "gaffer" } };
  const usePretty = params.pretty ?? process.stdout.isTTY === true;
  if (usePretty) return pino(options, pretty({ sync: true, ignore: "pid,hostname,name", translateTime: "SYS:HH:MM:ss.l" }));
  return pino(options);
}
