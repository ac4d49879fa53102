// The PostgreSQL connection: a pg pool under Kysely, values read back as the API shows them
// (timestamps as ISO-8601 UTC text with milliseconds, bigints as numbers, JSON parsed), and
// transactions that retry on a serialization failure or a deadlock and raise the commit
// signal with NOTIFY, so that every master hears what any of them committed.
import { createHash, randomUUID } from "node:crypto";
import pg from "pg";
import {
  Kysely,
  PostgresDialect,
  sql,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type PostgresPool,
  type PostgresPoolClient,
  type QueryResult,
  type RawBuilder,
  type RootOperationNode,
  type UnknownRow,
} from "kysely";
import { StorageUnavailableError, StorageUnreachableError, UnstorableValueError, type Committed } from "../types.js";

/** Kysely over a schema it is not told about: the store writes its SQL with sql``. A Transaction is one too. */
export type Executor = Kysely<Record<string, never>>;

const TIMESTAMPTZ = 1184;
const TIMESTAMP = 1114;
const INT8 = 20;
const NUMERIC = 1700;

/** A UTC timestamp as the session writes it: date, time, up to 6 digits of fraction, "+00". */
const UTC_TIMESTAMP = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00$/;

/**
 * "2026-12-06 19:30:00.123456+00" (the session is in UTC) → "2026-12-06T19:30:00.123Z".
 * Rewritten as text (the fraction cut to milliseconds, as Date would): a claim's rows carry
 * two timestamps a job, and parsing each into a Date was a tenth of the store's JavaScript.
 * Anything else (another offset, a timestamp without one, years past 9999) goes through Date.
 */
export function isoFromPg(text: string): string {
  const utc = UTC_TIMESTAMP.exec(text);
  if (utc) return `${utc[1]}T${utc[2]}.${(utc[3] ?? "").padEnd(3, "0").slice(0, 3)}Z`;
  const normalized = text.replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00");
  return new Date(normalized).toISOString();
}

export function typeParser(oid: number, format?: string): (value: string) => unknown {
  if (oid === TIMESTAMPTZ || oid === TIMESTAMP) return isoFromPg;
  if (oid === INT8 || oid === NUMERIC) return Number;
  return pg.types.getTypeParser(oid, format as "text") as (value: string) => unknown;
}

/** How values come back: timestamps as ISO text, bigints as numbers, JSON parsed. */
export const PG_TYPES = { getTypeParser: typeParser } as pg.CustomTypesConfig;

export interface PostgresConnectionParams {
  url: string;
  /** The schema the tables live in (tests give each store its own); default "public". */
  schema?: string;
  /** Pool size (default 10). */
  max?: number;
  /** How long one statement may take (default DEFAULT_QUERY_TIMEOUT_MS; 0: no limit, for migrations). */
  queryTimeoutMs?: number;
}

/**
 * The longest the store's real work takes is a batch of a sweeper, well under a second; a
 * statement still running after this is stuck (a lock held by a stuck session, a server on
 * its knees) and the server cancels it, leaving the connection usable.
 */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;
/**
 * Past the server's cancel, an answer that has not come is not coming (the network dropped it
 * without a word): pg gives up on it here, and the connection is dropped, not reused.
 */
const CLIENT_TIMEOUT_MARGIN_MS = 5_000;
const CLIENT_TIMED_OUT = "Query read timeout";
/** "cached plan must not change result type": a prepared statement outlived a change of its tables. */
const STALE_PREPARED = "0A000";

function isStalePrepared(error: unknown): boolean {
  return (error as PgError | undefined)?.code === STALE_PREPARED && /cached plan must not change result type/.test((error as PgError).message ?? "");
}

/** What pg's errors carry. */
interface PgError {
  code?: string;
  message?: string;
}

const RETRYABLE = new Set(["40001", "40P01"]);

/**
 * gaffer's advisory locks use the two-key form, this first key and a hash of the lock's name:
 * they share no keys with an application's one-key locks on the same database.
 */
export const ADVISORY_CLASS = 0x67616666; // "gaff"

/** The server ends a session whose peer went silent after 10 s + 3 × 5 s. */
export const SERVER_KEEPALIVES = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3";
/** Connection lost or refused, the server shutting down or out of resources. */
const UNAVAILABLE = /^(08|53|57P0)/;
const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH"]);

/**
 * pg's errors as the core knows them: a full disk or a read-only server refuse writes
 * (StorageUnavailableError: the master turns read-only); a connection refused, lost or not
 * had in time is this request's trouble alone (StorageUnreachableError: a 503); a value the
 * server cannot store is the caller's (UnstorableValueError: a 400).
 */
export function translatePgError(error: unknown): unknown {
  const code = (error as PgError | undefined)?.code;
  const message = `PostgreSQL: ${(error as Error | undefined)?.message ?? String(error)}`;
  if (code === "53100" || code === "25006") return new StorageUnavailableError(message, code);
  if (code === "22021" || code === "22P05" || code === "22P02" || code === "54000") {
    return new UnstorableValueError(`the database cannot store a value of this request (${(error as Error).message})`);
  }
  if (typeof code === "string" && (UNAVAILABLE.test(code) || NETWORK.has(code))) return new StorageUnreachableError(message, code);
  // 57014: canceled, here by statement_timeout (a server too slow to answer in time).
  if (code === "57014") return new StorageUnreachableError(message, code);
  if (error instanceof Error && /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout/.test(error.message)) {
    return new StorageUnreachableError(message, "connection");
  }
  return error;
}

/** NOTIFY payloads must stay under 8000 bytes: finished ids go in chunks. */
const MAX_FINISHED_PER_NOTICE = 100;

export type Change = Partial<Committed>;

/** What one transaction changed so far, sent with NOTIFY just before it commits. */
export class ChangeSet {
  claimable = false;
  scheduled = false;
  schedules = false;
  revoked = false;
  settings = false;
  finished: string[] = [];

  mark(change: Change): void {
    this.revoked ||= change.revoked === true;
    this.settings ||= change.settings === true;
    this.claimable ||= change.claimable === true;
    this.scheduled ||= change.scheduled === true;
    this.schedules ||= change.schedules === true;
    if (change.finished !== undefined) this.finished.push(...change.finished);
  }

  get empty(): boolean {
    return !(this.claimable || this.scheduled || this.schedules || this.revoked || this.settings || this.finished.length > 0);
  }

  committed(): Committed {
    const change: Committed = { claimable: this.claimable, scheduled: this.scheduled, schedules: this.schedules, finished: this.finished };
    return { ...change, ...(this.revoked ? { revoked: true as const } : {}), ...(this.settings ? { settings: true as const } : {}) };
  }

  /** The NOTIFY payloads (`origin`: the master that sent them): the flags in the first, finished ids spread over as many as they need. */
  payloads(origin: string): string[] {
    const chunks: string[][] = [];
    for (let i = 0; i < this.finished.length; i += MAX_FINISHED_PER_NOTICE) chunks.push(this.finished.slice(i, i + MAX_FINISHED_PER_NOTICE));
    if (chunks.length === 0) chunks.push([]);
    return chunks.map((finished, i) =>
      JSON.stringify({ o: origin, c: i === 0 && this.claimable, s: i === 0 && this.scheduled, h: i === 0 && this.schedules, r: i === 0 && this.revoked, g: i === 0 && this.settings, f: finished }),
    );
  }
}

/** A NOTIFY payload back into a Committed, with the master that sent it. */
export function parseNotice(payload: string): (Committed & { origin: string | undefined }) | undefined {
  try {
    const value = JSON.parse(payload) as { o?: unknown; c?: unknown; s?: unknown; h?: unknown; r?: unknown; g?: unknown; f?: unknown };
    const finished = Array.isArray(value.f) ? value.f.filter((id): id is string => typeof id === "string") : [];
    const origin = typeof value.o === "string" ? value.o : undefined;
    const change = { origin, claimable: value.c === true, scheduled: value.s === true, schedules: value.h === true, finished };
    return { ...change, ...(value.r === true ? { revoked: true as const } : {}), ...(value.g === true ? { settings: true as const } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * Refuses every query started once its transaction has ended, as Kysely's own transactions
 * do: a query on `tx.db` after COMMIT or ROLLBACK would run on a connection back in the pool,
 * perhaps inside another caller's transaction.
 */
class EndedGuard implements KyselyPlugin {
  ended = false;

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (this.ended) throw new Error("a query on a transaction that has ended (one not awaited inside it)");
    return args.node;
  }

  transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return Promise.resolve(args.result);
  }
}

/** A transaction's handle: the executor and the change set NOTIFY sends at its end. */
export interface Tx {
  /** The transaction's connection (PostgresDatabase.transaction opens and ends it; no query once it has). */
  db: Executor;
  mark(change: Change): void;
  /** Run `fn` once the transaction has committed (caches follow commits, never precede them). */
  afterCommit(fn: () => void): void;
}

export class PostgresDatabase {
  readonly pool: pg.Pool;
  readonly kysely: Kysely<Record<string, never>>;
  readonly schema: string;
  /** The LISTEN/NOTIFY channel of this schema's cluster. */
  readonly channel: string;
  /** Which master sent a notice: this one's own are told at once, not when they come back. */
  readonly origin = randomUUID();
  /** Told, right after each commit, what the transaction changed (this master's own commit signal). */
  onCommit: ((change: Committed) => void) | undefined;

  constructor(params: PostgresConnectionParams) {
    this.schema = params.schema ?? "public";
    this.channel = this.schema === "public" ? "gaffer" : `gaffer_${this.schema}`;
    const timeoutMs = params.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    this.pool = new pg.Pool({
      connectionString: params.url,
      max: params.max ?? 10,
      // Timestamps come back in UTC; unqualified names resolve in the store's schema.
      // A master that dies or is cut off inside a transaction must not hold its locks for hours:
      // the server ends such a session after a minute idle in it, or once its keepalives fail.
      options: `-c timezone=UTC -c search_path=${quoteIdent(this.schema)} -c idle_in_transaction_session_timeout=60000 ${SERVER_KEEPALIVES}${timeoutMs > 0 ? ` -c statement_timeout=${timeoutMs}` : ""}`,
      keepAlive: true,
      // What pg assumes. Said, so that no PGCLIENTENCODING or role setting picks an encoding in
      // which a multibyte character could swallow a backslash of a literal (transaction()'s NOTIFYs).
      client_encoding: "UTF8",
      types: PG_TYPES,
      connectionTimeoutMillis: 10_000,
      ...(timeoutMs > 0 ? { query_timeout: timeoutMs + CLIENT_TIMEOUT_MARGIN_MS } : {}),
    });
    // A client that loses its connection must not crash the process: an idle one's error comes
    // to the pool, a checked-out one's to the client itself (its query fails with it, and the
    // pool drops it when it comes back).
    this.pool.on("error", () => undefined);
    this.pool.on("connect", (client) => client.on("error", () => undefined));
    this.kysely = new Kysely({ dialect: new PostgresDialect({ pool: droppingTimedOut(this.pool) }) });
  }

  /** One statement outside a transaction. */
  async run<Row>(query: RawBuilder<Row>): Promise<Row[]> {
    try {
      return (await query.execute(this.kysely)).rows;
    } catch (error) {
      throw translatePgError(error);
    }
  }

  async one<Row>(query: RawBuilder<Row>): Promise<Row | undefined> {
    return (await this.run(query))[0];
  }

  /**
   * Run `work` in a READ COMMITTED transaction; tried again from the start on a
   * serialization failure or a deadlock. What it marked is sent with NOTIFY inside the
   * transaction, so listeners hear it only if (and once) it commits.
   *
   * BEGIN, COMMIT and ROLLBACK as Kysely's own transactions send them, but the NOTIFY goes in
   * one query with the COMMIT (the simple protocol runs them in order, and stops at the
   * first error, leaving the transaction to roll back): one round trip fewer for every write
   * that others must hear of. A loop of such transactions on this machine (BEGIN, an INSERT,
   * the NOTIFY, COMMIT): 568–594 µs and 311–502 µs of the client's CPU each with the NOTIFY a
   * round trip of its own, 428–456 µs and 196–321 µs so (bench/README.md, "8 December 2026,
   * 02:40–03:00").
   */
  async transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const committed: (() => void)[] = [];
        const changes = new ChangeSet();
        const result = await this.kysely.connection().execute(async (db) => {
          await sql`begin`.execute(db);
          const guard = new EndedGuard();
          try {
            const result = await work({ db: db.withPlugin(guard), mark: (change) => changes.mark(change), afterCommit: (fn) => committed.push(fn) });
            guard.ended = true;
            await sql.raw(`${changes.empty ? "" : this.notices(changes)}commit`).execute(db);
            return result;
          } catch (error) {
            guard.ended = true;
            await sql`rollback`.execute(db);
            throw error;
          }
        });
        for (const fn of committed) fn();
        if (!changes.empty) this.onCommit?.(changes.committed());
        return result;
      } catch (error) {
        const code = (error as PgError).code;
        // A serialization failure or a deadlock; or a statement prepared on this connection
        // before a migration changed its tables (the connection is gone now: the next try
        // takes another, up to as many as the pool held).
        if (code !== undefined && RETRYABLE.has(code) && attempt < 5) continue;
        if (isStalePrepared(error) && attempt <= (this.pool.options.max ?? 10)) continue;
        throw translatePgError(error);
      }
    }
  }

  /**
   * A transaction's changes as NOTIFY statements, each ending in `; `, in order (a batch of
   * 1,000 results is ten payloads), their values written as literals: the query that also
   * commits takes no parameters.
   */
  private notices(changes: ChangeSet): string {
    const channel = pg.escapeLiteral(this.channel);
    return changes
      .payloads(this.origin)
      .map((payload) => `SELECT pg_notify(${channel}, ${pg.escapeLiteral(payload)}); `)
      .join("");
  }

  async close(): Promise<void> {
    await this.kysely.destroy();
  }
}

/**
 * Put first in a statement (sql`${PREPARED} SELECT …`) to have it prepared once per
 * connection: the server parses it once, and after five calls keeps a generic plan instead of
 * planning each call, where that plan costs about what the calls' own plans did (a fifth of
 * the database's CPU in a drain went to parsing and planning the claim's and the results'
 * statements). Only for statements whose text is fixed (no list spliced in): each distinct
 * text is a prepared statement on every pooled connection for the connection's life. A kept
 * plan does not follow the statistics until autovacuum's ANALYZE: write such statements so
 * that only one plan makes sense (rows found by key, as finishAll does).
 */
export const PREPARED = sql.raw("/* prepared */ ");
const PREPARED_MARK = "/* prepared */ ";
const preparedNames = new Map<string, string>();

/** The name a prepared statement's text goes by on every connection (the same text, the same name). */
function preparedName(text: string): string {
  let name = preparedNames.get(text);
  if (name === undefined) {
    name = `gaffer_${createHash("sha1").update(text).digest("hex").slice(0, 24)}`;
    preparedNames.set(text, name);
  }
  return name;
}

/**
 * The pool as Kysely sees it, except that a client whose query pg gave up on goes away when
 * released (pg-pool's own query() does so; Kysely releases without saying why): its connection
 * is silent or still busy with the statement, and the next query on it would wait as long.
 * Statements marked PREPARED go as named (prepared) statements; a connection whose prepared
 * statement went stale goes away too.
 */
function droppingTimedOut(pool: pg.Pool): PostgresPool {
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect();
      let discard = false;
      const query = (text: string, parameters: unknown[]) =>
        (text.startsWith(PREPARED_MARK) ? client.query({ name: preparedName(text), text, values: parameters }) : client.query(text, parameters)).catch((error: unknown) => {
          // A statement this connection prepared no longer fits the tables (a migration
          // changed what it returns): the connection goes, and its statements with it.
          if (error instanceof Error && (error.message === CLIENT_TIMED_OUT || isStalePrepared(error))) discard = true;
          throw error;
        });
      return { query, release: () => client.release(discard) } as unknown as PostgresPoolClient;
    },
    end: () => pool.end(),
  };
}

/** How long a connection of its own (the lock's, LISTEN's) is given to say goodbye when closed. */
export const CLOSE_TIMEOUT_MS = 1_000;

/**
 * End a client of its own (not the pool's): the server is told goodbye, and if that is not
 * over within `ms` (the network went silent: the goodbye is never acknowledged), its socket
 * is dropped. Never throws.
 */
export async function endClient(client: pg.Client, ms = CLOSE_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), ms)));
  const ended = await Promise.race([client.end().then(() => "ended", () => "ended"), late]);
  clearTimeout(timer);
  if (ended === "late") (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
