// Files and folders only their owner can read: the database holds every client's payloads
// and results, the hashes of secrets and the JWT signing key.
//
// The mode is given when a file is created, not set by chmod after (no moment when it is
// readable by others), nor through process.umask (global to the process: an embedded master
// would change it for its host, and it races with files others create meanwhile). SQLite
// creates a database's -wal, -shm and -journal with the database file's own mode, so a
// database created here 0600 keeps them 0600.
import { closeSync, mkdirSync, openSync } from "node:fs";

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/** Creates `dir` and any missing parent 0700; folders that exist keep their mode. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/** Creates `path` empty and 0600 unless it exists (an existing file keeps its mode). */
export function createPrivateFile(path: string): void {
  closeSync(openSync(path, "a", PRIVATE_FILE_MODE));
}

/** Creates `path` empty and 0600, failing if it exists; answers its descriptor. */
export function createPrivateFileExclusive(path: string): number {
  return openSync(path, "wx", PRIVATE_FILE_MODE);
}
