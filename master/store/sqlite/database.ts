// The SQLite connection: pragmas, a compile-only Kysely, and cached prepared statements.
//
// Kysely builds and types every query; better-sqlite3 runs it. Queries run
// synchronously on the one connection, so a transaction is a plain function
// call that nothing else can interleave with (Kysely's own async transactions
// on a single connection could let another request's statement slip in).
import { closeSync, fdatasync, fdatasyncSync, openSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import {
  DummyDriver,
  Kysely,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  sql,
  type Compilable,
  type CompiledQuery,
  type RawBuilder,
} from "kysely";
import type { DatabaseSchema } from "../schema.js";
import { StorageUnavailableError } from "../types.js";

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

/** fs.fdatasync as a promise, made once (not once per flush). */
const fdatasyncOnPool = promisify(fdatasync);

/** Above this share of the last window spent working, the event loop counts as busy. */
const BUSY_UTILIZATION = 0.5;
const LOAD_WINDOW_MS = 50;

/**
 * Whether the event loop was busy lately (perf_hooks' event loop utilization,
 * over windows of 50 ms): cheap enough to ask before every flush.
 */
export function loopLoad(): () => boolean {
  let since = performance.eventLoopUtilization();
  let sinceAt = performance.now();
  let busy = false;
  return () => {
    const now = performance.now();
    if (now - sinceAt >= LOAD_WINDOW_MS) {
      const current = performance.eventLoopUtilization();
      busy = performance.eventLoopUtilization(current, since).utilization > BUSY_UTILIZATION;
      since = current;
      sinceAt = now;
    }
    return busy;
  };
}

/** A named placeholder inside a query built once and run many times. */
class Param {
  constructor(readonly name: string) {}
}

/**
 * Use in a query given to `db.prepare()`: bound from the params object at each
 * call. Typed `never` so that it fits any column; the params type of
 * `prepare()` says what is bound.
 */
export function param(name: string): never {
  return new Param(name) as never;
}

/**
 * `(SELECT value FROM json_each(:name))`: the values of a JSON array bound as one
 * parameter, for `column IN …` over a whole batch of ids in one prepared statement.
 */
export function inJsonArray<T>(name: string): RawBuilder<T> {
  return sql<T>`(SELECT value FROM json_each(${param(name)}))`;
}

export interface Prepared<Row, P> {
  all(params: P): Row[];
  get(params: P): Row | undefined;
  run(params: P): number;
}

export type Bindable = string | number | bigint | Buffer | null;

/** Rows per statement of a `rowInserter` (SQLite allows 32,766 bound values a statement). */
const ROWS_PER_INSERT = 100;
/**
 * Transactions a group commit may chain before its flush: the writes queued, the claims
 * their commit woke, and one more for what those set off. Anything later waits for the
 * next flush.
 */
const FLUSH_ROUNDS = 3;

/** SQLite result codes that mean the disk, not the query, is the problem. */
const STORAGE_FAILURES = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|NOTADB|CORRUPT|PROTOCOL)/;

/** Map a driver error the core must understand (a full disk) to the store's own; leave the rest. */
export function translateError(error: unknown): unknown {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string" && STORAGE_FAILURES.test(code)) {
    return new StorageUnavailableError(`the database refuses writes (${code}): ${(error as Error).message}`, code);
  }
  return error;
}

function guarded<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return (...args: A) => {
    try {
      return fn(...args);
    } catch (error) {
      throw translateError(error);
    }
  };
}

/**
 * An object of fixed shape from a row's values, compiled once per statement (a
 * literal with the column names, as better-sqlite3 would name them; a later
 * column of the same name wins, as there). The names come from our own SQL and
 * are quoted with JSON.stringify; a column named __proto__ becomes a property
 * of that name (a computed key), never the object's prototype.
 */
function rowMaker(names: readonly string[]): (values: unknown[]) => Record<string, unknown> {
  const fields = names.map((name, index) => {
    const key = JSON.stringify(name);
    return `${name === "__proto__" ? `[${key}]` : key}: values[${index}]`;
  });
  return new Function("values", `return { ${fields.join(", ")} };`) as (values: unknown[]) => Record<string, unknown>;
}

/** A value as SQLite binds it (booleans as 1 and 0, undefined as NULL). */
export function toBindable(value: unknown): Bindable {
  if (value === undefined || value === null) return null;
  if (typeof value === "boolean") return value ? 1 : 0;
  return value as Bindable;
}

function flushFailed(error: unknown): StorageUnavailableError {
  return new StorageUnavailableError(`the WAL could not be flushed to disk: ${(error as Error).message}`, "EIO");
}

/**
 * Durable group commits without blocking the event loop. The connection runs
 * with synchronous=NORMAL (a COMMIT only writes the WAL), and a group's promises
 * settle after an fdatasync of the WAL file on the thread pool: a commit is
 * acknowledged only once it is on disk, as with FULL. One flush covers every
 * commit before it (the WAL is appended to). While a flush is on its way the
 * next group keeps growing and commits when it lands, so there is one commit
 * per flush, as when COMMIT waited for the disk, but requests keep being read
 * and checked meanwhile. A group of one is flushed on the spot while the event
 * loop is not busy (the thread pool's round trip cost more than it saved when
 * little else is going on).
 * Writes outside a group (sweeps, admin verbs) flush synchronously right after
 * their COMMIT, as SQLite would. SQLite itself still syncs around checkpoints
 * and when the WAL starts over.
 *
 * Measured with `npm run bench`, against SQLite's own FULL (2 rounds each):
 * the same submission and drain rates, dispatch latency p99 4.9-6.4 ms vs
 * 8.1-9.5 ms; without the growing group, single submissions were 15-30 %
 * slower (many tiny commits), so that part matters.
 */
class WalSync {
  private fd: number | undefined;
  private commits = 0;
  /** The last commit whose answer waits for the disk (soft commits after it do not count). */
  private hard = 0;
  private flushed = 0;
  private running = false;
  private waiting: { upTo: number; resolve: () => void; reject: (error: unknown) => void }[] = [];

  constructor(
    private readonly walPath: string,
    private readonly fdatasync: (fd: number) => Promise<void>,
  ) {}

  /**
   * A write transaction (or a statement outside one) committed. `soft`: nothing waits
   * to see it on disk; the next flush covers it all the same (the WAL is appended to).
   */
  committed(soft = false): void {
    this.commits += 1;
    if (!soft) this.hard = this.commits;
  }

  private file(): number | undefined {
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.walPath, "r");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
    return this.fd;
  }

  private idle: (() => void)[] = [];

  /** `fn` once no flush is on its way (at once if none is). */
  whenIdle(fn: () => void): void {
    if (this.running) this.idle.push(fn);
    else fn();
  }

  /** Every commit so far but the soft ones on disk, waiting on the event loop's terms. */
  durable(): Promise<void> {
    const upTo = this.hard;
    if (this.flushed >= upTo) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting.push({ upTo, resolve, reject });
      this.next();
    });
  }

  /** Every commit so far but the soft ones on disk, now (blocking). */
  durableNow(): void {
    if (this.flushed >= this.hard) return;
    try {
      const fd = this.file();
      if (fd !== undefined) fdatasyncSync(fd);
    } catch (error) {
      throw flushFailed(error);
    }
    this.flushed = this.commits;
  }

  private next(): void {
    if (this.running || this.waiting.length === 0) return;
    this.running = true;
    const upTo = this.commits;
    let flush: Promise<void>;
    try {
      const fd = this.file();
      flush = fd === undefined ? Promise.resolve() : this.fdatasync(fd);
    } catch (error) {
      flush = Promise.reject(error);
    }
    const settle = (error?: unknown) => {
      this.running = false;
      if (error === undefined) this.flushed = Math.max(this.flushed, upTo);
      const done = this.waiting.filter((w) => w.upTo <= upTo);
      this.waiting = this.waiting.filter((w) => w.upTo > upTo);
      for (const w of done) {
        if (error === undefined) w.resolve();
        else w.reject(flushFailed(error));
      }
      this.next();
      if (!this.running) for (const fn of this.idle.splice(0)) fn();
    };
    flush.then(() => settle(), (error: unknown) => settle(error ?? new Error("fdatasync failed")));
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

interface Queued {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class SqliteDatabase {
  readonly sqlite: Database.Database;
  private queue: Queued[] = [];
  private flushScheduled = false;
  /** Builds queries only; never executes them. */
  readonly kysely: Kysely<DatabaseSchema>;
  private readonly cache = new Map<string, Database.Statement>();
  /** Set when commits are flushed off the event loop (syncOffThread). */
  private readonly walSync: WalSync | undefined;
  private readonly loopBusy: () => boolean;

  /** Settles once every commit so far but the soft ones is on disk (at once unless syncOffThread). */
  durable(): Promise<void> {
    return this.walSync?.durable() ?? Promise.resolve();
  }

  /** What a COMMIT guarantees: "full" (on disk when acknowledged) or "normal". */
  get durability(): Synchronous {
    return this.walSync || this.sqlite.pragma("synchronous", { simple: true }) === 2 ? "full" : "normal";
  }

  constructor(params: OpenDatabaseParams) {
    this.sqlite = new Database(params.path, {
      timeout: params.busyTimeoutMs ?? 5000,
      readonly: params.readonly ?? false,
    });
    this.loopBusy = params.loopBusy ?? loopLoad();
    if (!params.readonly) {
      this.sqlite.pragma("journal_mode = WAL");
      const full = params.synchronous !== "normal";
      if (full && params.syncOffThread && params.path !== ":memory:") {
        this.walSync = new WalSync(`${params.path}-wal`, params.fdatasync ?? fdatasyncOnPool);
      }
      this.sqlite.pragma(`synchronous = ${full && !this.walSync ? "FULL" : "NORMAL"}`);
    }
    this.sqlite.pragma("foreign_keys = ON");
    // 16 MB of page cache (the default is 2 MB): the hot index pages stay in memory
    // (claims and submissions touch a few hundred pages; 32 MB, as before, was a
    // sixth of the 200 MB memory target once lists and stats had read 1M jobs).
    this.sqlite.pragma("cache_size = -16384");
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
  }

  private statement(text: string): Database.Statement {
    let stmt = this.cache.get(text);
    if (!stmt) {
      stmt = this.sqlite.prepare(text);
      this.cache.set(text, stmt);
    }
    return stmt;
  }

  private execute<T>(work: () => T): T {
    try {
      return work();
    } catch (error) {
      throw translateError(error);
    }
  }

  /** Run a query built now (its values inline). The statement is cached by its SQL text. */
  all<Row>(query: Compilable<Row>): Row[] {
    return this.allCompiled<Row>(query.compile());
  }

  get<Row>(query: Compilable<Row>): Row | undefined {
    const compiled = query.compile();
    return this.execute(() =>
      this.read(this.statement(compiled.sql), (stmt) => stmt.get(compiled.parameters.map((value) => toBindable(value))) as Row | undefined),
    );
  }

  /** A statement that answers rows, which may still write (RETURNING). */
  private read<T>(stmt: Database.Statement, fn: (stmt: Database.Statement) => T): T {
    const value = fn(stmt);
    if (!stmt.readonly) this.afterStatement();
    return value;
  }

  /**
   * Run hand-written SQL (Kysely's `sql` tag, values still bound): for the few
   * statements that must name their index (`INDEXED BY`), which the builder cannot say.
   */
  allSql<Row>(query: RawBuilder<Row>): Row[] {
    return this.allCompiled<Row>(query.compile(this.kysely));
  }

  /** Run a query compiled already (the same statements a reader thread runs, when it cannot). */
  allCompiled<Row>(compiled: { sql: string; parameters: readonly unknown[] }): Row[] {
    return this.execute(() => this.read(this.statement(compiled.sql), (stmt) => stmt.all(compiled.parameters.map((value) => toBindable(value))) as Row[]));
  }

  /** Run a statement that returns no rows; answers the number of rows changed. */
  run(query: Compilable<unknown>): number {
    const compiled = query.compile();
    const changes = this.execute(() => this.statement(compiled.sql).run(compiled.parameters.map((value) => toBindable(value))).changes);
    this.afterStatement();
    return changes;
  }

  /**
   * An inserter of rows (values in `columns` order) with multi-row
   * `INSERT … VALUES (…), (…)` statements of up to ROWS_PER_INSERT rows, one
   * statement prepared per row count on first use. For narrow rows written by the
   * hundred (audit rows): 4.5 µs a row against 5.6 for a statement each and 6.5
   * for `INSERT … SELECT` from a JSON array.
   */
  rowInserter(table: string, columns: readonly string[]): (rows: readonly Bindable[][]) => void {
    const tuple = `(${columns.map(() => "?").join(", ")})`;
    const byCount = new Map<number, Database.Statement>();
    const statement = (count: number) => {
      let stmt = byCount.get(count);
      if (!stmt) {
        stmt = this.sqlite.prepare(`INSERT INTO ${table} (${columns.join(", ")}) VALUES ${Array(count).fill(tuple).join(", ")}`);
        byCount.set(count, stmt);
      }
      return stmt;
    };
    return (rows) => {
      if (rows.length === 0) return;
      for (let start = 0; start < rows.length; start += ROWS_PER_INSERT) {
        const chunk = rows.slice(start, start + ROWS_PER_INSERT);
        this.execute(() => statement(chunk.length).run(chunk.flat()));
      }
      this.afterStatement();
    };
  }

  /** A statement outside a transaction committed on its own: make it as durable as a transaction. */
  private afterStatement(): void {
    if (!this.walSync || this.sqlite.inTransaction) return;
    this.walSync.committed();
    this.execute(() => this.walSync?.durableNow());
  }

  /**
   * Compile a query once, with `param("name")` placeholders, for the hot paths:
   * each call then binds values by name and skips Kysely and SQLite's parser.
   */
  prepare<P extends object, Row = unknown>(query: Compilable<Row>): Prepared<Row, P> {
    return this.prepareCompiled<P, Row>(query.compile());
  }

  /** `prepare()` for hand-written SQL (Kysely's `sql` tag): what the builder cannot say. */
  prepareSql<P extends object, Row = unknown>(query: RawBuilder<Row>): Prepared<Row, P> {
    return this.prepareCompiled<P, Row>(query.compile(this.kysely));
  }

  private prepareCompiled<P extends object, Row>(compiled: CompiledQuery<Row>): Prepared<Row, P> {
    const slots = compiled.parameters.map((value) =>
      value instanceof Param ? { name: value.name, value: null } : { name: null, value: toBindable(value) },
    );
    const stmt = this.sqlite.prepare(compiled.sql);
    const bind = (params: P): Bindable[] =>
      slots.map((slot) =>
        slot.name === null ? slot.value : toBindable((params as Record<string, unknown>)[slot.name]),
      );
    const writes = !stmt.readonly;
    const after = <T>(value: T): T => {
      if (writes) this.afterStatement();
      return value;
    };
    // Rows as arrays, made into objects here: better-sqlite3's own row objects cost
    // about 0.45 µs a column (a heartbeat's 10 leases of 11 columns: 5.9 µs a row
    // against 3.7 this way). A statement that answers no rows only runs (its all()
    // and get() throw in better-sqlite3, as before).
    const source = stmt.reader ? stmt.raw(true) : stmt;
    const toRow = rowMaker(stmt.reader ? stmt.columns().map((column) => column.name) : []) as (values: unknown[]) => Row;
    return {
      all: guarded((params: P) => after((source.all(bind(params)) as unknown[][]).map((values) => toRow(values)))),
      get: guarded((params: P) => {
        const values = source.get(bind(params)) as unknown[] | undefined;
        return after(values === undefined ? undefined : toRow(values));
      }),
      run: guarded((params: P) => after(source.run(bind(params)).changes)),
    };
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
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // While a flush is on its way, the next group keeps growing instead of
        // committing: one commit per flush, as when COMMIT itself waited for the disk,
        // but the event loop goes on reading and checking requests meanwhile.
        const flush = () => setImmediate(() => this.flushQueue());
        if (this.walSync) this.walSync.whenIdle(flush);
        else flush();
      }
    });
  }

  /**
   * Commit what is queued, then what its commit set off (the claims a submission woke,
   * queued by the store's commit signal) in a second transaction, and so on for a few
   * rounds: all of them share the one flush that follows.
   */
  private flushQueue(): void {
    this.flushScheduled = false;
    const done: { item: Queued; value: unknown }[] = [];
    for (let round = 0; round < FLUSH_ROUNDS && this.queue.length > 0; round += 1) {
      const batch = this.queue;
      this.queue = [];
      done.push(...this.commitGroup(batch));
    }
    if (done.length === 0) return;
    const settle = () => done.forEach(({ item, value }) => item.resolve(value));
    const fail = (error: unknown) => done.forEach(({ item }) => item.reject(error));
    if (!this.walSync) return settle();
    // A group of one while the event loop has little else to do: flushing here is
    // quicker than a round trip through the thread pool (dispatch latency p50 1.6 vs
    // 2.4 ms). Under load it would stall every other request for the fsync (1,000
    // heartbeats a second spent 11 % of the loop in fdatasync, p99 80 vs 30 ms).
    if (done.length === 1 && !this.loopBusy()) {
      try {
        this.walSync.durableNow();
      } catch (error) {
        return fail(error);
      }
      return settle();
    }
    this.walSync.durable().then(settle, fail);
  }

  /** One group in one transaction: what it answers, to settle once flushed (a replayed group settles itself). */
  private commitGroup(batch: Queued[]): { item: Queued; value: unknown }[] {
    let values: unknown[];
    try {
      values = this.runTransaction(() => batch.map((item) => item.work()), "group");
    } catch {
      // Undone as a whole; now each on its own, so only the failing ones fail.
      for (const item of batch) {
        try {
          item.resolve(this.transaction(item.work));
        } catch (error) {
          item.reject(translateError(error));
        }
      }
      return [];
    }
    return batch.map((item, index) => ({ item, value: values[index] }));
  }

  private readonly named = new Map<string, Prepared<unknown, object>>();

  /** `prepare()`, once: the statement built on first use under `key` and kept. */
  prepared<P extends object, Row = unknown>(key: string, build: () => Compilable<Row>): Prepared<Row, P> {
    return this.preparedOnce(key, () => this.prepare<P, Row>(build()));
  }

  /** `prepareSql()`, once, under `key`: for hand-written SQL on a path that runs often. */
  preparedSql<P extends object, Row = unknown>(key: string, build: () => RawBuilder<Row>): Prepared<Row, P> {
    return this.preparedOnce(key, () => this.prepareSql<P, Row>(build()));
  }

  private preparedOnce<P extends object, Row>(key: string, make: () => Prepared<Row, P>): Prepared<Row, P> {
    let statement = this.named.get(key);
    if (!statement) {
      statement = make() as Prepared<unknown, object>;
      this.named.set(key, statement);
    }
    return statement as Prepared<Row, P>;
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

  /** `flush`: now, on the event loop; `group`: a group commit, which waits for its flush without blocking; `soft`: none. */
  private runTransaction<T>(fn: () => T, mode: "flush" | "group" | "soft"): T {
    const control = this.control();
    if (this.sqlite.inTransaction) return fn();
    try {
      control.begin.run();
      const before = this.walSync ? (control.changes.get() as number) : 0;
      const result = fn();
      control.commit.run();
      this.afterRollback = [];
      for (const committed of this.afterCommit.splice(0)) committed();
      // Only a transaction that changed rows has anything to flush. One that read only (a
      // sweep that found nothing, a claim that took nothing) neither fsyncs on the event loop
      // nor makes later answers wait for a flush. (DDL alone changes no rows; the
      // migrations always record themselves in schema_migrations, which does.)
      if (this.walSync && control.changes.get() !== before) {
        this.walSync.committed(mode === "soft");
        if (mode === "flush") this.walSync.durableNow();
      }
      return result;
    } catch (error) {
      if (this.sqlite.inTransaction) control.rollback.run();
      this.afterCommit = [];
      for (const undone of this.afterRollback.splice(0)) undone();
      throw translateError(error);
    }
  }

  close(): void {
    this.walSync?.close();
    this.cache.clear();
    if (this.sqlite.open) this.sqlite.close();
  }
}
