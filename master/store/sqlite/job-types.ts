// Flow control per job type (API.md §5a): paused types and cluster-wide limits of running
// jobs. The settings are few and read by every claim, so they are kept in memory, following
// commits (a setting undone with its transaction is forgotten). A claim asks `gate` which
// of its lanes it may take from, and how many jobs of each limited type.
import { sql } from "kysely";
import type { JobTypeInfo, JobTypeStore } from "../types.js";
import type { StoreContext } from "./context.js";
import { param, type SqliteDatabase } from "./database.js";
import type { Lanes } from "./lanes.js";
import { readQuery, type ThreadReader } from "./reader.js";

export interface TypeSetting {
  maxRunning: number | null;
  paused: boolean;
}

const NONE: TypeSetting = Object.freeze({ maxRunning: null, paused: false });

export interface Gate {
  /** The lanes the claim may take from. */
  lanes: number[];
  /** For lanes of a limited type: how many more of that type may run (shared by the type's lanes). */
  room: Map<string, number>;
}

export class JobTypeSettings {
  private readonly settings = new Map<string, TypeSetting>();
  /** Whether any type is paused or limited: read by every claim, so kept, not counted each time. */
  private anyActive = false;

  constructor(private readonly db: SqliteDatabase) {
    for (const row of db.all(db.kysely.selectFrom("job_types").selectAll())) {
      this.remember(row.type, { maxRunning: row.max_running, paused: row.paused === 1 });
    }
  }

  private remember(type: string, setting: TypeSetting): void {
    this.settings.set(type, setting);
    this.anyActive = [...this.settings.values()].some((known) => known.paused || known.maxRunning !== null);
  }

  get(type: string): TypeSetting {
    return this.settings.get(type) ?? NONE;
  }

  /** Every type with a setting. */
  types(): string[] {
    return [...this.settings.keys()];
  }

  /** Whether any type is paused or limited (else a claim needs no gate). */
  get active(): boolean {
    return this.anyActive;
  }

  /** Store a type's setting inside the caller's transaction; known in memory once it commits. */
  write(type: string, setting: TypeSetting, at: string): void {
    this.db.run(
      this.db.kysely
        .insertInto("job_types")
        .values({ type, max_running: setting.maxRunning, paused: setting.paused ? 1 : 0, updated_at: at })
        .onConflict((oc) => oc.column("type").doUpdateSet({ max_running: setting.maxRunning, paused: setting.paused ? 1 : 0, updated_at: at })),
    );
    this.db.onCommit(() => this.remember(type, setting));
  }

  /** Jobs of `type` running now, anywhere (bounded by the cluster's capacity: read from jobs_running alone). */
  running(type: string): number {
    const db = this.db;
    return (
      db
        .preparedSql<{ type: string }, { n: number }>("type-running", () =>
          sql`SELECT count(*) AS n FROM jobs INDEXED BY jobs_running WHERE status = 'running' AND type = ${param("type")}`,
        )
        .get({ type })?.n ?? 0
    );
  }

  /** Which of `lanes` a claim may take from now: none of a paused type or of a type at its limit. */
  gate(lanes: readonly number[], laneTypes: Lanes): Gate {
    const room = new Map<string, number>();
    const open: number[] = [];
    for (const lane of lanes) {
      const type = laneTypes.typeOf(lane);
      const setting = type === undefined ? NONE : this.get(type);
      if (setting.paused) continue;
      if (type !== undefined && setting.maxRunning !== null) {
        if (!room.has(type)) room.set(type, Math.max(0, setting.maxRunning - this.running(type)));
        if ((room.get(type) ?? 0) === 0) continue;
      }
      open.push(lane);
    }
    return { lanes: open, room };
  }
}

/** GET and PUT /api/v1/types: the settings with each type's counts. */
export class SqliteJobTypeStore implements JobTypeStore {
  constructor(
    private readonly ctx: StoreContext,
    /** Where the counts are read, off the event loop (none: on the master's connection). */
    private readonly reader?: ThreadReader,
  ) {}

  async list(params: { since: Date }): Promise<JobTypeInfo[]> {
    return this.read(params.since);
  }

  /** The types' settings and counts; `only`: one type's (PUT answers it without counting the others). */
  private async read(since: Date, only?: string): Promise<JobTypeInfo[]> {
    const { db, lanes, types } = this.ctx;
    const ofType = only === undefined ? sql`` : sql` AND type = ${only}`;
    // Every waiting or running job (each state from its own partial index), then the jobs
    // finished since then: long reads, in the reader thread.
    const [live, finished] = await Promise.all([
      readQuery(
        db,
        this.reader,
        sql<{ type: string; status: string; n: number }>`
          SELECT type, 'pending' AS status, count(*) AS n FROM jobs INDEXED BY jobs_by_status WHERE status = 'pending'${ofType} GROUP BY type
          UNION ALL
          SELECT type, 'running' AS status, count(*) AS n FROM jobs INDEXED BY jobs_running WHERE status = 'running'${ofType} GROUP BY type`.compile(db.kysely),
      ),
      readQuery(
        db,
        this.reader,
        sql<{ type: string; status: string; n: number }>`
          SELECT type, status, count(*) AS n FROM jobs INDEXED BY jobs_finished
          WHERE finished_at IS NOT NULL AND finished_at >= ${since.toISOString()} AND status IN ('completed', 'failed')${ofType}
          GROUP BY type, status`.compile(db.kysely),
      ),
    ]);
    const info = new Map<string, JobTypeInfo>();
    const of = (type: string): JobTypeInfo => {
      let entry = info.get(type);
      if (!entry) {
        const setting = types.get(type);
        entry = { type, max_running: setting.maxRunning, paused: setting.paused, pending: 0, running: 0, completed_1h: 0, failed_1h: 0 };
        info.set(type, entry);
      }
      return entry;
    };
    for (const type of only === undefined ? [...lanes.types(), ...types.types()] : [only]) of(type);
    for (const row of live) {
      if (row.status === "pending") of(row.type).pending = Number(row.n);
      else of(row.type).running = Number(row.n);
    }
    for (const row of finished) {
      if (row.status === "completed") of(row.type).completed_1h = Number(row.n);
      else of(row.type).failed_1h = Number(row.n);
    }
    return [...info.values()].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
  }

  async set(params: { type: string; maxRunning?: number | null; paused?: boolean; actor: string | null; since: Date }): Promise<JobTypeInfo> {
    const { db, types, audit, clock } = this.ctx;
    db.transaction(() => {
      const from = types.get(params.type);
      const to = { maxRunning: params.maxRunning === undefined ? from.maxRunning : params.maxRunning, paused: params.paused ?? from.paused };
      const at = clock.now().toISOString();
      types.write(params.type, to, at);
      audit.write(
        {
          event_type: "type.changed",
          entity_type: "type",
          entity_id: params.type,
          client_id: params.actor,
          details: { from: { max_running: from.maxRunning, paused: from.paused }, to: { max_running: to.maxRunning, paused: to.paused } },
        },
        at,
      );
      // Resumed, or a limit raised or lifted: waiting claims may take its jobs now.
      const more = (from.paused && !to.paused) || (from.maxRunning !== null && (to.maxRunning === null || to.maxRunning > from.maxRunning));
      this.ctx.signal.mark({ claimable: more });
    });
    const [found] = await this.read(params.since, params.type);
    if (!found) throw new Error(`type ${params.type} was set but is not listed`);
    return found;
  }
}
