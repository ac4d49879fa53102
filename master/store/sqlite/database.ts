// The SQLite connection: pragmas, a compile-only Kysely, transactions, and the doors to the
// statements (statements.ts), the group commit (group-commit.ts) and the WAL's flush (wal-sync.ts).
//
// Kysely builds and types every query; better-sqlite3 runs it. Queries run
// synchronously on the one connection, so a transaction is a plain function
// call that nothing else can interleave with (Kysely's own async transactions
// on a single connection could let another request's statement slip in).
import Database from "better-sqlite3";
import {
  DummyDriver,
  Kysely,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type Compilable,
  type RawBuilder,
} from "kysely";
import type { DatabaseSchema } from "../schema.js";
import { translated, translateError } from "./errors.js";
import { GroupCommit } from "./group-commit.js";
import { createPrivateFile } from "./private-files.js";
import { Statements, type Bindable, type Compiled, type Prepared } from "./statements.js";
import { loopLoad, WalSync } from "./wal-sync.js";

// The verbs import these beside the connection, from here.
export { translateError } from "./errors.js";
export { inJsonArray, limitParam, param, toBindable, type Bindable, type Prepared } from "./statements.js";
export { loopLoad } from "./wal-sync.js";

export type Synchronous = "full" | "normal";

export interface OpenDatabaseParams {
  path: string;
  synchronous?: Synchronous;
  busyTimeoutMs?: number;
  readonly?: boolean;
  /**
   * With synchronous "full": group commits fsync the WAL on libuv's thread pool
   * and settle once it is on disk, instead of SQLite fsyncing inside COMMIT on
   * the event loop (see WalSync). Same guarantee; the master turns it on.
   */
  syncOffThread?: boolean;
  /** Tests: how the WAL is flushed (default fs.fdatasync). */
  fdatasync?: (fd: number) => Promise<void>;
  /** Tests: whether the event loop is busy (default: its utilization over the last 50 ms, see loopLoad). */
  loopBusy?: () => boolean;
}

/** `flush`: now, on the event loop; `group`: a group commit, which waits for its flush without blocking; `soft`: none. */
type TransactionMode = "flush" | "group" | "soft";

/** Run each callback, whatever the others do; a failure is reported, not thrown. */
function runEach(callbacks: readonly (() => void)[]): void {
  for (const callback of callbacks) {
    try {
      callback();
    } catch (error) {
      process.emitWarning(error instanceof Error ? error : new Error(String(error)), "GafferCommitCallbackWarning");
    }
  }
}

export class SqliteDatabase {
  readonly sqlite: Database.Database;
  /** Builds queries only; never executes them. */
  readonly kysely: Kysely<DatabaseSchema>;
  private readonly statements: Statements;
  private readonly groups: GroupCommit;
  /** Set when commits are flushed off the event loop (syncOffThread). */
  private readonly walSync: WalSync | undefined;

  /** Settles once every commit so far but the soft ones is on disk (at once unless syncOffThread). */
  durable(): Promise<void> {
    return this.walSync?.durable() ?? Promise.resolve();
  }

  /** Whether commits are flushed on the thread pool (syncOffThread) rather than inside COMMIT. */
  get flushesOffThread(): boolean {
    return this.walSync !== undefined;
  }

  /** What a COMMIT guarantees: "full" (on disk when acknowledged) or "normal". */
  get durability(): Synchronous {
    return this.walSync || this.sqlite.pragma("synchronous", { simple: true }) === 2 ? "full" : "normal";
  }

  constructor(params: OpenDatabaseParams) {
    // A new database is created 0600 here, before SQLite would create it with the umask's mode.
    if (!params.readonly && params.path !== ":memory:" && params.path !== "") createPrivateFile(params.path);
    this.sqlite = new Database(params.path, {
      timeout: params.busyTimeoutMs ?? 5000,
      readonly: params.readonly ?? false,
    });
    if (!params.readonly) {
      this.sqlite.pragma("journal_mode = WAL");
      const full = params.synchronous !== "normal";
      if (full && params.syncOffThread && params.path !== ":memory:") {
        this.walSync = new WalSync(`${params.path}-wal`, params.fdatasync);
      }
      this.sqlite.pragma(`synchronous = ${full && !this.walSync ? "FULL" : "NORMAL"}`);
    }
    this.sqlite.pragma("foreign_keys = ON");
    // 8 MB of page cache (the default is 2 MB): the hot index pages stay in memory
    // (claims and submissions touch a few hundred pages). It fills up whatever its size
    // once a sweep has read a big table (aging a million jobs at a master's start), and
    // the OS caches the file anyway: 16 MB, as before, was 8 MB more of the master's RSS.
    this.sqlite.pragma("cache_size = -8192");
    // Sorts and temporary tables in memory, not in temporary files.
    this.sqlite.pragma("temp_store = MEMORY");
    this.kysely = new Kysely<DatabaseSchema>({
      dialect: {
        createAdapter: () => new SqliteAdapter(),
        createDriver: () => new DummyDriver(),
        createIntrospector: (db) => new SqliteIntrospector(db),
        createQueryCompiler: () => new SqliteQueryCompiler(),
      },
    });
    this.statements = new Statements(this.sqlite, () => this.afterStatement());
    this.groups = new GroupCommit({
      inGroup: (work) => this.runTransaction(work, "group"),
      alone: (work) => this.transaction(work),
      walSync: this.walSync,
      loopBusy: params.loopBusy ?? loopLoad(),
    });
  }

  /** Run a query built now (its values inline). The statement is cached by its SQL text. */
  all<Row>(query: Compilable<Row>): Row[] {
    return this.statements.all<Row>(query.compile());
  }

  get<Row>(query: Compilable<Row>): Row | undefined {
    return this.statements.get<Row>(query.compile());
  }

  /**
   * Run hand-written SQL (Kysely's `sql` tag, values still bound): for the few
   * statements that must name their index (`INDEXED BY`), which the builder cannot say.
   */
  allSql<Row>(query: RawBuilder<Row>): Row[] {
    return this.statements.all<Row>(query.compile(this.kysely));
  }

  /** Run a query compiled already (the same statements a reader thread runs, when it cannot). */
  allCompiled<Row>(compiled: Compiled): Row[] {
    return this.statements.all<Row>(compiled);
  }

  /** Run a statement that returns no rows; answers the number of rows changed. */
  run(query: Compilable<unknown>): number {
    return this.statements.run(query.compile());
  }

  /** Inserts rows by the hundred in multi-row statements (see Statements.rowInserter). */
  rowInserter(table: string, columns: readonly string[]): (rows: readonly Bindable[][]) => void {
    return this.statements.rowInserter(table, columns);
  }

  /** A statement outside a transaction committed on its own: make it as durable as a transaction. */
  private afterStatement(): void {
    if (!this.walSync || this.sqlite.inTransaction) return;
    this.walSync.committed();
    translated(() => this.walSync?.durableNow());
  }

  /**
   * Compile a query once, with `param("name")` placeholders, for the hot paths:
   * each call then binds values by name and skips Kysely and SQLite's parser.
   */
  prepare<P extends object, Row = unknown>(query: Compilable<Row>): Prepared<Row, P> {
    return this.statements.prepare<P, Row>(query.compile());
  }

  /** `prepare()` for hand-written SQL (Kysely's `sql` tag): what the builder cannot say. */
  prepareSql<P extends object, Row = unknown>(query: RawBuilder<Row>): Prepared<Row, P> {
    return this.statements.prepare<P, Row>(query.compile(this.kysely));
  }

  /** `prepare()`, once: the statement built on first use under `key` and kept. */
  prepared<P extends object, Row = unknown>(key: string, build: () => Compilable<Row>): Prepared<Row, P> {
    return this.statements.preparedOnce(key, () => this.prepare<P, Row>(build()));
  }

  /** `prepareSql()`, once, under `key`: for hand-written SQL on a path that runs often. */
  preparedSql<P extends object, Row = unknown>(key: string, build: () => RawBuilder<Row>): Prepared<Row, P> {
    return this.statements.preparedOnce(key, () => this.prepareSql<P, Row>(build()));
  }

  /**
   * Group commit: `work` joins the other writes queued in this tick in one
   * transaction; the promise settles after the shared COMMIT, so what it answers
   * is durable. One fsync for many requests instead of one each. A verb's
   * expected refusals write nothing (they check before they write), so the group
   * needs no savepoints; if something unexpected throws, the group is undone and
   * each item runs again in its own transaction, so one failure stays its own.
   */
  grouped<T>(work: () => T): Promise<T> {
    return this.groups.add(work);
  }

  private controls: Record<"begin" | "commit" | "rollback" | "changes", Database.Statement> | undefined;

  private control() {
    this.controls ??= {
      begin: this.sqlite.prepare("BEGIN IMMEDIATE"),
      commit: this.sqlite.prepare("COMMIT"),
      rollback: this.sqlite.prepare("ROLLBACK"),
      changes: this.sqlite.prepare("SELECT total_changes()").pluck(),
    };
    return this.controls;
  }

  /**
   * One transaction (`BEGIN IMMEDIATE`, so a writer never fails half-way on a lock
   * upgrade). Inside another it simply joins it: what throws undoes the whole outer
   * transaction. (No savepoints: SQLite copies every page a savepoint touches into a
   * statement journal, which doubled the cost of each write.)
   */
  transaction<T>(fn: () => T): T {
    return this.runTransaction(fn, "flush");
  }

  /**
   * A transaction for soft state, which its sender repeats anyway (a heartbeat's sign of
   * life, lease renewals, progress): committed, but nothing waits for it to reach the disk,
   * and `durable()` does not wait for it either. A crash of the master keeps it (the WAL's
   * write is in the OS before this returns); a power loss before the next flush may undo it.
   * Without syncOffThread it is an ordinary transaction.
   */
  softTransaction<T>(fn: () => T): T {
    return this.runTransaction(fn, "soft");
  }

  private afterCommit: (() => void)[] = [];
  private afterRollback: (() => void)[] = [];

  /**
   * `committed` once the transaction running now commits, `undone` if it rolls back instead
   * (at once, committed, outside a transaction): what the store keeps in memory follows
   * what it committed, never a write that may still be undone (a group commit's replay).
   */
  onCommit(committed: () => void, undone?: () => void): void {
    if (!this.sqlite.inTransaction) return committed();
    this.afterCommit.push(committed);
    if (undone) this.afterRollback.push(undone);
  }

  private runTransaction<T>(fn: () => T, mode: TransactionMode): T {
    const control = this.control();
    if (this.sqlite.inTransaction) return fn();
    let result: T;
    let changed = false;
    try {
      control.begin.run();
      const before = this.walSync ? (control.changes.get() as number) : 0;
      result = fn();
      control.commit.run();
      // Only a transaction that changed rows has anything to flush. One that read only (a
      // sweep that found nothing, a claim that took nothing) neither fsyncs on the event loop
      // nor makes later answers wait for a flush. (DDL alone changes no rows; the
      // migrations always record themselves in schema_migrations, which does.)
      changed = this.walSync !== undefined && control.changes.get() !== before;
    } catch (error) {
      if (this.sqlite.inTransaction) control.rollback.run();
      this.afterCommit = [];
      runEach(this.afterRollback.splice(0));
      throw translateError(error);
    }
    // Committed: nothing from here on may look like a failed transaction (a group commit
    // would replay work that is in), so the callbacks' own failures are only reported.
    this.afterRollback = [];
    if (changed) this.walSync?.committed(mode === "soft");
    runEach(this.afterCommit.splice(0));
    if (changed && mode === "flush") this.walSync?.durableNow();
    return result;
  }

  close(): void {
    this.walSync?.close();
    this.statements.clear();
    if (this.sqlite.open) this.sqlite.close();
  }
}
