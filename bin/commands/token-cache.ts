// The CLI's access tokens kept between commands, as gh, kubectl and gcloud keep theirs: one file
// per master URL and client id, readable only by the user, holding the token and its expiry
// (never the client secret), so that a session of commands signs in once, not once a command.
// The file's name is a digest of the URL, the id and the secret: a wrong secret finds no token
// to borrow and is refused as it would be without the cache.
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { CachedToken, TokenCache } from "../../worker/client.js";

/** GAFFER_CACHE_DIR, else $XDG_CACHE_HOME/gaffer, else ~/.cache/gaffer. */
export function cacheDir(env: NodeJS.ProcessEnv): string {
  if (env.GAFFER_CACHE_DIR) return env.GAFFER_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "gaffer");
}

interface TokenFile {
  master_url: string;
  client_id: string;
  access_token: string;
  expires_at: string;
  /** When the CLI stops reusing it: shortly before it expires. */
  refresh_at: string;
}

/**
 * A cache that never fails a command: a file it cannot read is no token, one it cannot write
 * means the next command fetches a token again.
 */
export function fileTokenCache(params: { dir: string; masterUrl: string; clientId: string; clientSecret: string }): TokenCache {
  const { masterUrl, clientId } = params;
  const key = createHash("sha256").update(`${masterUrl}\n${clientId}\n${params.clientSecret}`).digest("hex").slice(0, 32);
  const folder = join(params.dir, "tokens");
  const file = join(folder, `${key}.json`);
  return {
    load() {
      try {
        const saved = JSON.parse(readFileSync(file, "utf8")) as Partial<TokenFile>;
        if (saved.master_url !== masterUrl || saved.client_id !== clientId || typeof saved.access_token !== "string") return undefined;
        const expiresAt = Date.parse(saved.expires_at ?? "");
        const refreshAt = Date.parse(saved.refresh_at ?? "");
        if (!Number.isFinite(expiresAt) || !Number.isFinite(refreshAt)) return undefined;
        return { value: saved.access_token, expiresAt, refreshAt };
      } catch {
        return undefined;
      }
    },
    save(token: CachedToken) {
      const saved: TokenFile = {
        master_url: masterUrl,
        client_id: clientId,
        access_token: token.value,
        expires_at: new Date(token.expiresAt).toISOString(),
        refresh_at: new Date(token.refreshAt).toISOString(),
      };
      try {
        mkdirSync(folder, { recursive: true, mode: 0o700 });
        // Written whole under another name, then renamed: a concurrent command reads the old file or the new one.
        const partial = `${file}.${process.pid}.tmp`;
        writeFileSync(partial, `${JSON.stringify(saved, null, 2)}\n`, { mode: 0o600 });
        chmodSync(partial, 0o600);
        renameSync(partial, file);
      } catch {
        // An unwritable cache costs a token per command, as before; the command itself goes on.
      }
    },
  };
}
