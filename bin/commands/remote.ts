// Commands that talk to a master: where it is and how to authenticate (API.md §9).
import type { Command } from "commander";
import { ApiError, CredentialsRefusedError, MasterClient, MasterUnreachableError, NoCredentialsError } from "../../worker/client.js";
import { CredentialsError, plainHttpWarnings, resolveClientSecret, type ResolvedSecret } from "../../worker/credentials.js";
import { CliError, EXIT } from "./output.js";
import { cacheDir, fileTokenCache } from "./token-cache.js";

export interface RemoteFlags {
  master?: string;
  clientId?: string;
  clientSecret?: string;
  clientSecretFile?: string;
  json?: boolean;
}

/** --master, --client-id, --client-secret and --json on a command. */
export function withRemoteOptions(command: Command): Command {
  return command
    .option("--master <url>", "the master's URL (GAFFER_MASTER_URL, default http://127.0.0.1:8080)")
    .option("--client-id <id>", "API client id (GAFFER_CLIENT_ID); GAFFER_TOKEN is used first if set")
    .option("--client-secret <secret>", "its secret (GAFFER_CLIENT_SECRET); the token they get is reused from GAFFER_CACHE_DIR (default ~/.cache/gaffer)")
    .option("--client-secret-file <path>", "read the secret from this file, without its trailing newline (GAFFER_CLIENT_SECRET_FILE); unlike --client-secret, not visible to other users")
    .option("--json", "machine-readable output");
}

export const HOW_TO_SIGN_IN =
  "set GAFFER_TOKEN, or GAFFER_CLIENT_ID and GAFFER_CLIENT_SECRET (or GAFFER_CLIENT_SECRET_FILE), or pass --client-id and --client-secret-file " +
  "(gaffer dev writes them to data/credentials.env)";

/** Each warning once per command, however many times it connects. */
const warned = new Set<string>();

function warn(warnings: string[]): void {
  for (const warning of warnings) {
    if (warned.has(warning)) continue;
    warned.add(warning);
    process.stderr.write(`gaffer: warning: ${warning}\n`);
  }
}

function clientSecretOf(flags: RemoteFlags, env: NodeJS.ProcessEnv): ResolvedSecret {
  try {
    return resolveClientSecret(flags, env);
  } catch (error) {
    if (error instanceof CredentialsError) throw new CliError(error.message, EXIT.usage);
    throw error;
  }
}

export function connect(flags: RemoteFlags, env: NodeJS.ProcessEnv = process.env): MasterClient {
  const token = env.GAFFER_TOKEN || undefined;
  const clientId = flags.clientId ?? (env.GAFFER_CLIENT_ID || undefined);
  const secret = clientSecretOf(flags, env);
  const clientSecret = secret.secret;
  const masterUrl = (flags.master ?? env.GAFFER_MASTER_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
  warn([...secret.warnings, ...plainHttpWarnings(masterUrl)]);
  // Half a pair would go out as no credentials at all: name the missing half instead.
  if (!token && clientId !== undefined && clientSecret === undefined) {
    throw new CliError(`a client id but no secret: set GAFFER_CLIENT_SECRET or pass --client-secret-file (or set GAFFER_CLIENT_SECRET_FILE)`, EXIT.usage);
  }
  if (!token && clientId === undefined && clientSecret !== undefined) {
    throw new CliError(`a client secret but no client id: set GAFFER_CLIENT_ID or pass --client-id`, EXIT.usage);
  }
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
