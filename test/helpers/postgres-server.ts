// A PostgreSQL server of a test's own, in a temporary directory on a port of its own, for
// tests that stop and restart the database under running masters (a failover of the
// database, as the masters see it) without touching the server every other test uses.
// It needs Debian's server binaries (package postgresql); run as root, the server runs as
// the `postgres` user, as Debian's own clusters do.
import { execFile, execFileSync } from "node:child_process";
import { chownSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./processes.js";
import { tempDir } from "./temp.js";
import { haveTool } from "./tools.js";

const run = promisify(execFile);

/** The newest installed server's binaries (/usr/lib/postgresql/N/bin), if any. */
function binaries(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], "bin");
}

/** Whether a private server can be made here; says loudly what is skipped if not. */
export function havePostgresServer(skipped: string): boolean {
  return haveTool(join(binaries() ?? "/usr/lib/postgresql/N/bin", "initdb"), skipped, "install Debian's postgresql (apt-get install postgresql)");
}

/** Servers started and not destroyed: stopped when the test process exits, however it exits. */
const running = new Set<PostgresServer>();
process.on("exit", () => {
  for (const server of running) server.destroySync();
});

export class PostgresServer {
  private constructor(
    private readonly bin: string,
    private readonly dir: string,
    readonly port: number,
  ) {}

  /** postgres://postgres@127.0.0.1:PORT/postgres */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** initdb (trust authentication, user postgres) and start. */
  static async create(): Promise<PostgresServer> {
    const bin = binaries();
    if (!bin) throw new Error("no PostgreSQL server binaries under /usr/lib/postgresql");
    const dir = tempDir("gaffer-pg-");
    if (process.getuid?.() === 0) chownSync(dir, ...owner());
    const server = new PostgresServer(bin, dir, await freePort());
    await server.as("initdb", ["-D", join(dir, "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
    try {
      await server.start();
    } catch (error) {
      // pg_ctl may give up waiting on a server that still comes up: none is left behind.
      await server.destroy();
      throw error;
    }
    return server;
  }

  async start(): Promise<void> {
    running.add(this);
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${this.dir} -c fsync=off`;
    await this.as("pg_ctl", ["-D", join(this.dir, "data"), "-l", join(this.dir, "server.log"), "-o", options, "-w", "start"]);
  }

  /** A fast shutdown: sessions are ended, as a failover ends them. */
  async stop(): Promise<void> {
    await this.as("pg_ctl", ["-D", join(this.dir, "data"), "-m", "fast", "-w", "stop"]);
  }

  /** Stop it for good (its directory goes with the test's temporary directories). */
  async destroy(): Promise<void> {
    await this.as("pg_ctl", this.immediateStop()).catch(() => undefined);
    running.delete(this);
  }

  /** destroy(), for the process's exit hook (where nothing asynchronous runs). */
  destroySync(): void {
    try {
      execFileSync(...this.command("pg_ctl", this.immediateStop()), { timeout: 30_000, stdio: "ignore" });
    } catch {
      // Not running, or gone already.
    }
    running.delete(this);
  }

  /** pg_ctl's arguments to stop at once, as a crash would (no checkpoint). */
  private immediateStop(): string[] {
    return ["-D", join(this.dir, "data"), "-m", "immediate", "-w", "stop"];
  }

  /** The program and its arguments: initdb and the server refuse to run as root, so as postgres then. */
  private command(program: string, args: string[]): [string, string[]] {
    const path = join(this.bin, program);
    return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", path, ...args]] : [path, args];
  }

  private async as(program: string, args: string[]): Promise<void> {
    await run(...this.command(program, args), { timeout: 60_000 });
  }
}

/** The postgres user's uid and gid. */
function owner(): [number, number] {
  for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
    const [name, , uid, gid] = line.split(":");
    if (name === "postgres") return [Number(uid), Number(gid)];
  }
  throw new Error("no postgres user in /etc/passwd");
}
