// Online backups (SQLite's backup API, safe while the master runs) with a SHA-256
// beside them, and restores that refuse a file whose hash does not match. The hash
// proves the copy intact, not who made it: anyone who can write the backup can write
// its .sha256. Backups and restored files are created 0600, like the database.
import { createHash } from "node:crypto";
import { closeSync, createReadStream, createWriteStream, existsSync, fsyncSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { pipeline } from "node:stream/promises";
import Database from "better-sqlite3";
import { createPrivateFileExclusive, PRIVATE_FILE_MODE } from "./private-files.js";

export class BackupError extends Error {}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function integrity(path: string): string[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return (db.pragma("integrity_check(20)") as { integrity_check: string }[])
      .map((row) => row.integrity_check)
      .filter((line) => line !== "ok");
  } finally {
    db.close();
  }
}

/** Copy `source` to `destination` page by page while others use it; writes `destination.sha256`. */
export async function backupDatabase(source: string, destination: string): Promise<{ bytes: number; sha256: string }> {
  if (!existsSync(source)) throw new BackupError(`no database at ${source}`);
  // Created here, empty and 0600, so SQLite's backup writes into a file only we can read.
  try {
    closeSync(createPrivateFileExclusive(destination));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") throw new BackupError(`${destination} exists; choose another name`);
    throw error;
  }
  const db = new Database(source, { readonly: true, fileMustExist: true });
  try {
    await db.backup(destination);
  } catch (error) {
    rmSync(destination, { force: true });
    throw error;
  } finally {
    db.close();
  }
  const problems = integrity(destination);
  if (problems.length > 0) throw new BackupError(`the backup failed its integrity check: ${problems.join("; ")}`);
  const sha256 = await sha256File(destination);
  // The format of sha256sum, so `sha256sum -c OUT.db.sha256` checks it too.
  writeFileSync(`${destination}.sha256`, `${sha256}  ${basename(destination)}\n`, { mode: PRIVATE_FILE_MODE });
  return { bytes: statSync(destination).size, sha256 };
}

/** The database is open elsewhere (a running master holds a lock even while idle). */
function inUse(path: string): boolean {
  if (!existsSync(path)) return false;
  const db = new Database(path, { timeout: 200 });
  try {
    db.pragma("locking_mode = EXCLUSIVE");
    db.exec("BEGIN EXCLUSIVE");
    db.exec("COMMIT");
    return false;
  } catch (error) {
    if ((error as { code?: string }).code === "SQLITE_BUSY") return true;
    throw error;
  } finally {
    db.close();
  }
}

/** Put a backup in place of `target`, after checking its hash and integrity; the master must be stopped. */
export async function restoreDatabase(backup: string, target: string): Promise<{ sha256: string }> {
  const hashFile = `${backup}.sha256`;
  if (!existsSync(backup)) throw new BackupError(`no backup at ${backup}`);
  if (!existsSync(hashFile)) throw new BackupError(`no ${hashFile} beside the backup: cannot tell whether it is intact`);
  const expected = readFileSync(hashFile, "utf8").trim().split(/\s+/)[0] ?? "";
  const actual = await sha256File(backup);
  if (expected !== actual) {
    throw new BackupError(`the backup's SHA-256 is ${actual}, but ${hashFile} says ${expected}: refusing a damaged or altered file`);
  }
  const problems = integrity(backup);
  if (problems.length > 0) throw new BackupError(`the backup failed its integrity check: ${problems.join("; ")}`);
  if (inUse(target)) throw new BackupError(`${target} is in use (is a master running on it?); stop it first`);
  const staging = `${target}.restoring`;
  // Not copyFile: it gives the copy the backup's mode, which may be wider than 0600.
  rmSync(staging, { force: true });
  const fd = createPrivateFileExclusive(staging);
  await pipeline(createReadStream(backup), createWriteStream("", { fd, autoClose: false }));
  fsyncSync(fd);
  closeSync(fd);
  // An old WAL would be replayed onto the restored file: it must go with the old database.
  rmSync(`${target}-wal`, { force: true });
  rmSync(`${target}-shm`, { force: true });
  renameSync(staging, target);
  return { sha256: actual };
}
