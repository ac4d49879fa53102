// Real gaffer processes started through the CLI (dist/), always stopped by the test that started them.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const CLI = join(fileURLToPath(new URL("../..", import.meta.url)), "dist", "bin", "gaffer.js");

const started = new Set<ChildProcess>();

/** The CLI keeps access tokens in GAFFER_CACHE_DIR: the tests' go here, never to the user's ~/.cache. */
let cacheDir: string | undefined;
function testCacheDir(): string {
  cacheDir ??= mkdtempSync(join(tmpdir(), "gaffer-cache-"));
  return cacheDir;
}

export interface GafferProcess {
  proc: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
}

export function spawnGaffer(args: string[], env: Record<string, string> = {}): GafferProcess {
  const proc = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", GAFFER_CACHE_DIR: testCacheDir(), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.add(proc);
  let output = "";
  proc.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  proc.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => {
    proc.on("exit", (code, signal) => {
      started.delete(proc);
      resolve(code ?? signal ?? -1);
    });
  });
  return { proc, output: () => output, exited };
}

/** Wait until the process printed a line matching `pattern`; answers the match. */
export async function waitForOutput(gaffer: GafferProcess, pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = gaffer.output().match(pattern);
    if (match) return match;
    if (gaffer.proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`no ${pattern} in the output of gaffer:\n${gaffer.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export interface MasterProcess extends GafferProcess {
  url: string;
}

export async function spawnMaster(db: string, env: Record<string, string> = {}, args: string[] = []): Promise<MasterProcess> {
  const gaffer = spawnGaffer(["master", "start", "--db", db, "--port", "0", ...args], {
    GAFFER_AUTH: "off",
    GAFFER_LOG_LEVEL: "info",
    ...env,
  });
  const [, url] = await waitForOutput(gaffer, /listening on (http:\/\/[0-9.:]+)/);
  return { ...gaffer, url: url ?? "" };
}

/** Stop every process a test started and did not stop itself, and remove the tokens they kept. */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...started].map(
      (proc) =>
        new Promise<void>((resolve) => {
          proc.once("exit", () => resolve());
          proc.kill("SIGKILL");
        }),
    ),
  );
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  cacheDir = undefined;
}

/** Run a gaffer command to its end; answers its exit code and output. */
export async function runGaffer(args: string[], env: Record<string, string> = {}): Promise<{ code: number | string; output: string }> {
  const gaffer = spawnGaffer(args, env);
  const code = await gaffer.exited;
  return { code, output: gaffer.output() };
}

/** A free TCP port on 127.0.0.1 (for a master that must come back on the same address). */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface WorkerProcessOptions {
  name: string;
  handlers: string;
  stateDir: string;
  labels?: string;
  capacity?: number;
  env?: Record<string, string>;
  args?: string[];
}

export async function spawnWorker(masterUrl: string, options: WorkerProcessOptions): Promise<GafferProcess> {
  const args = [
    "worker",
    "start",
    "--master",
    masterUrl,
    "--name",
    options.name,
    "--handlers",
    options.handlers,
    "--state-dir",
    options.stateDir,
    "--capacity",
    String(options.capacity ?? 1),
    ...(options.labels ? ["--labels", options.labels] : []),
    ...(options.args ?? []),
  ];
  const worker = spawnGaffer(args, { GAFFER_LOG_LEVEL: "info", ...options.env });
  await waitForOutput(worker, /"event":"worker.registered"/);
  return worker;
}

/** Poll `check` until it answers something truthy. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 15_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
