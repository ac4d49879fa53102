// Commands that talk to a master: where it is and how to authenticate (API.md §9).
import type { Command } from "commander";
import { ApiError, MasterClient, MasterUnreachableError } from "../../worker/client.js";
import { CliError, EXIT } from "./output.js";

export interface RemoteFlags {
  master?: string;
  clientId?: string;
  clientSecret?: string;
  json?: boolean;
}

/** --master, --client-id, --client-secret and --json on a command. */
export function withRemoteOptions(command: Command): Command {
  return command
    .option("--master <url>", "the master's URL (GAFFER_MASTER_URL, default http://127.0.0.1:8080)")
    .option("--client-id <id>", "API client id (GAFFER_CLIENT_ID); GAFFER_TOKEN is used first if set")
    .option("--client-secret <secret>", "its secret (GAFFER_CLIENT_SECRET)")
    .option("--json", "machine-readable output");
}

export function connect(flags: RemoteFlags, env: NodeJS.ProcessEnv = process.env): MasterClient {
  return new MasterClient({
    masterUrl: flags.master ?? env.GAFFER_MASTER_URL ?? "http://127.0.0.1:8080",
    token: env.GAFFER_TOKEN || undefined,
    clientId: flags.clientId ?? env.GAFFER_CLIENT_ID,
    clientSecret: flags.clientSecret ?? env.GAFFER_CLIENT_SECRET,
    attempts: 2,
    timeoutMs: 15_000,
  });
}

/** Turn a failed call into a message and an exit code that mean something. */
export function explain(error: unknown): never {
  if (error instanceof ApiError) {
    const code =
      error.status === 404 ? EXIT.notFound : error.status === 409 ? EXIT.conflict : error.status === 503 ? EXIT.unavailable : error.status < 500 ? EXIT.usage : EXIT.failed;
    throw new CliError(error.message, code);
  }
  if (error instanceof MasterUnreachableError) throw new CliError(error.message, EXIT.unavailable);
  throw error;
}

/** Run a call against the master with errors explained. */
export async function call<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    return explain(error);
  }
}
