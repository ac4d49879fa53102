// Commands that talk to a master: where it is and how to authenticate (API.md §9).
import type { Command } from "commander";
import { ApiError, CredentialsRefusedError, MasterClient, MasterUnreachableError, NoCredentialsError } from "../../worker/client.js";
import { CliError, EXIT } from "./output.js";
import { cacheDir, fileTokenCache } from "./token-cache.js";

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
    .option("--client-secret <secret>", "its secret (GAFFER_CLIENT_SECRET); the token they get is reused from GAFFER_CACHE_DIR (default ~/.cache/gaffer)")
    .option("--json", "machine-readable output");
}

export const HOW_TO_SIGN_IN =
  "set GAFFER_TOKEN, or GAFFER_CLIENT_ID and GAFFER_CLIENT_SECRET, or pass --client-id and --client-secret " +
  "(gaffer dev writes them to data/credentials.env)";

export function connect(flags: RemoteFlags, env: NodeJS.ProcessEnv = process.env): MasterClient {
  const token = env.GAFFER_TOKEN || undefined;
  const clientId = flags.clientId ?? (env.GAFFER_CLIENT_ID || undefined);
  const clientSecret = flags.clientSecret ?? (env.GAFFER_CLIENT_SECRET || undefined);
  // Half a pair would go out as no credentials at all: name the missing half instead.
  if (!token && clientId !== undefined && clientSecret === undefined) {
    throw new CliError(`a client id but no secret: set GAFFER_CLIENT_SECRET or pass --client-secret`, EXIT.usage);
  }
  if (!token && clientId === undefined && clientSecret !== undefined) {
    throw new CliError(`a client secret but no client id: set GAFFER_CLIENT_ID or pass --client-id`, EXIT.usage);
  }
  const masterUrl = (flags.master ?? env.GAFFER_MASTER_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
  // A token from the id and secret is kept for the next command; one given in GAFFER_TOKEN is never written anywhere.
  const tokenCache = !token && clientId && clientSecret ? fileTokenCache({ dir: cacheDir(env), masterUrl, clientId, clientSecret }) : undefined;
  return new MasterClient({
    masterUrl,
    token,
    clientId,
    clientSecret,
    tokenCache,
    attempts: 2,
    timeoutMs: 15_000,
  });
}

/** A 401 in words that say what to set, rather than the HTTP hint meant for curl. */
function unauthorized(error: ApiError, env: NodeJS.ProcessEnv): CliError {
  if (error instanceof CredentialsRefusedError) {
    return new CliError(
      `the master refused client ${error.clientId} and its secret (${error.detail}): check GAFFER_CLIENT_ID and GAFFER_CLIENT_SECRET ` +
        `(or --client-id and --client-secret); a disabled client is refused too`,
      EXIT.usage,
    );
  }
  if (error instanceof NoCredentialsError) return new CliError(`the master wants credentials (401): ${HOW_TO_SIGN_IN}`, EXIT.usage);
  if (env.GAFFER_TOKEN) {
    return new CliError(
      `the master refused GAFFER_TOKEN (${error.detail}): set a new one (gaffer token prints one), ` +
        `or unset it to sign in with GAFFER_CLIENT_ID and GAFFER_CLIENT_SECRET`,
      EXIT.usage,
    );
  }
  return new CliError(error.message, EXIT.usage);
}

/** Turn a failed call into a message and an exit code that mean something. */
export function explain(error: unknown, env: NodeJS.ProcessEnv = process.env): never {
  // No answer at all first: it is an ApiError too, with status 0.
  if (error instanceof MasterUnreachableError) throw new CliError(error.message, EXIT.unavailable);
  if (error instanceof ApiError && error.status === 401) throw unauthorized(error, env);
  if (error instanceof ApiError) {
    const code =
      error.status === 404 ? EXIT.notFound : error.status === 409 ? EXIT.conflict : error.status === 503 ? EXIT.unavailable : error.status < 500 ? EXIT.usage : EXIT.failed;
    throw new CliError(error.message, code);
  }
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
