// Where the worker daemon and the CLI take a client secret from, and what they warn about
// (API.md §9): a secret given as an argument is readable by every local user and every job
// handler (/proc/PID/cmdline, ps), and a plain-http master on another host sees the secret
// and every token cross the network in clear.
import { readFileSync } from "node:fs";
import { isLoopbackName } from "../master/auth/loopback.js";

export class CredentialsError extends Error {}

/** The secret in a file: its text without one trailing newline. A missing, unreadable or empty file is an error. */
export function readSecretFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "it is a directory" : message;
    throw new CredentialsError(`cannot read the client secret from ${path}: ${why}`);
  }
  const secret = text.replace(/\r?\n$/, "");
  if (secret.trim() === "") throw new CredentialsError(`the client secret file ${path} is empty`);
  return secret;
}

export interface SecretSources {
  /** --client-secret */
  clientSecret?: string | undefined;
  /** --client-secret-file */
  clientSecretFile?: string | undefined;
}

export interface ResolvedSecret {
  secret: string | undefined;
  /** What to tell the user on stderr (nothing stops). */
  warnings: string[];
}

export const ARGUMENT_SECRET_WARNING =
  "--client-secret on the command line can be read by every local user and every job handler (ps, /proc/PID/cmdline): " +
  "use --client-secret-file PATH or GAFFER_CLIENT_SECRET instead";

/**
 * The client secret, from (first found) --client-secret, --client-secret-file,
 * GAFFER_CLIENT_SECRET, GAFFER_CLIENT_SECRET_FILE. Two at the same level are refused:
 * which one was meant cannot be told.
 */
export function resolveClientSecret(flags: SecretSources, env: NodeJS.ProcessEnv): ResolvedSecret {
  const given = (value: string | undefined) => (value === undefined || value === "" ? undefined : value);
  const flag = given(flags.clientSecret);
  const flagFile = given(flags.clientSecretFile);
  if (flag !== undefined && flagFile !== undefined) throw new CredentialsError("give --client-secret or --client-secret-file, not both");
  if (flag !== undefined) return { secret: flag, warnings: [ARGUMENT_SECRET_WARNING] };
  if (flagFile !== undefined) return { secret: readSecretFile(flagFile), warnings: [] };
  const variable = given(env.GAFFER_CLIENT_SECRET);
  const variableFile = given(env.GAFFER_CLIENT_SECRET_FILE);
  if (variable !== undefined && variableFile !== undefined) {
    throw new CredentialsError("GAFFER_CLIENT_SECRET and GAFFER_CLIENT_SECRET_FILE are both set: unset one");
  }
  if (variableFile !== undefined) return { secret: readSecretFile(variableFile), warnings: [] };
  return { secret: variable, warnings: [] };
}

/** A warning for each master URL that is plain http to a host other than this one (`urls` may be a comma-separated list). */
export function plainHttpWarnings(urls: string): string[] {
  const warnings: string[] = [];
  for (const url of urls.split(",").map((part) => part.trim()).filter((part) => part !== "")) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      continue; // a malformed URL is refused where it is used
    }
    if (parsed.protocol === "http:" && !isLoopbackName(parsed.hostname)) {
      warnings.push(
        `${parsed.origin} is plain http to another host: the client secret and access tokens cross the network in clear; ` +
          "use https:// (a TLS proxy in front of the master)",
      );
    }
  }
  return warnings;
}
