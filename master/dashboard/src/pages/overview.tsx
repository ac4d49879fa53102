// Overview: jobs by status, pending by priority, oldest pending age, nodes by status,
// and jobs completed and failed per minute over the last hour (from the database).
import { api, type Stats, type Throughput } from "../api.js";
import { ErrorNote, PageHeader, Updated } from "../components/common.js";
import { usePoll } from "../hooks.js";

const JOB_STATUSES = ["blocked", "scheduled", "pending", "running", "completed", "failed", "canceled"];
const PRIORITIES = ["live", "high", "medium", "low", "batch"];
const NODE_STATUSES = ["online", "draining", "dead", "offline"];
const MINUTES = 60;

function Counts({ title, values, order, link }: { title: string; values: Record<string, number> | undefined; order: string[]; link?: (key: string) => string }) {
  return (
    <section class="card" aria-labelledby={`h-${title}`}>
      <h2 id={`h-${title}`}>{title}</h2>
      <dl class="counts">
        {order.map((key) => (
          <div key={key} class={`count count-${key}`}>
            <dt>{link ? <a href={link(key)}>{key}</a> : key}</dt>
            <dd>{values ? (values[key] ?? 0) : "–"}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

function age(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "none pending";
  if (seconds < 120) return `${seconds.toFixed(0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(0)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** The smallest of 1, 2, 5, 10, 20, 50, … at or above `value`: a scale whose halves read well. */
export function niceCeiling(value: number): number {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** One bar per minute of the last hour, completed under failed; an empty minute is an empty slot. */
export function ThroughputChart({ data }: { data: Throughput | undefined }) {
  const now = Date.now();
  const start = Math.floor(now / 60_000) * 60_000 - (MINUTES - 1) * 60_000;
  const byMinute = new Map((data?.minutes ?? []).map((m) => [new Date(m.minute).getTime(), m]));
  const bars = Array.from({ length: MINUTES }, (_, i) => {
    const minute = byMinute.get(start + i * 60_000);
    return { completed: minute?.completed ?? 0, failed: minute?.failed ?? 0 };
  });
  const peak = Math.max(0, ...bars.map((b) => b.completed + b.failed));
  // Even numbers on the scale: its top, its middle and 0 are labelled, with a line at each.
  const max = niceCeiling(Math.max(2, peak));
  const completed = bars.reduce((sum, b) => sum + b.completed, 0);
  const failed = bars.reduce((sum, b) => sum + b.failed, 0);
  const width = 600;
  const height = 160;
  const slot = width / MINUTES;
  const scale = (value: number) => (value / max) * (height - 4);
  return (
    <figure class="card chart">
      <figcaption>
        <h2>Last hour</h2>
        <span>
          <span class="key key-completed">{completed} completed</span> <span class="key key-failed">{failed} failed</span> · peak {peak}/min
        </span>
      </figcaption>
      <div class="plot">
        <div class="scale" aria-hidden="true">
          <span>{max}/min</span>
          <span>{max / 2}</span>
          <span>0</span>
        </div>
        <svg viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" role="img" aria-label={`Jobs per minute over the last hour: ${completed} completed, ${failed} failed, at most ${peak} in a minute.`}>
          {bars.map((bar, i) => {
            const done = scale(bar.completed);
            const bad = scale(bar.failed);
            return (
              <g key={i}>
                <rect class="bar-completed" x={i * slot + 1} width={slot - 2} y={height - done} height={done} />
                <rect class="bar-failed" x={i * slot + 1} width={slot - 2} y={height - done - bad} height={bad} />
              </g>
            );
          })}
        </svg>
      </div>
      <div class="axis" aria-hidden="true">
        <span>60 min ago</span>
        <span>now</span>
      </div>
    </figure>
  );
}

export function Overview() {
  const stats = usePoll(() => api<Stats>("GET", "/api/v1/queue/stats"), 5000, "stats");
  const throughput = usePoll(() => api<Throughput>("GET", `/api/v1/queue/throughput?minutes=${MINUTES}`), 10_000, "throughput");
  return (
    <>
      <PageHeader title="Overview">
        <Updated at={stats.updatedAt} />
      </PageHeader>
      <ErrorNote message={stats.error} />
      <div class="grid">
        <Counts title="Jobs" values={stats.data?.jobs} order={JOB_STATUSES} link={(status) => `#/jobs?status=${status}`} />
        <Counts title="Pending by priority" values={stats.data?.pending_by_priority} order={PRIORITIES} />
        <section class="card" aria-labelledby="h-oldest">
          <h2 id="h-oldest">Oldest pending</h2>
          <p class="big">{stats.data ? age(stats.data.oldest_pending_age_s) : "–"}</p>
        </section>
        <Counts title="Nodes" values={stats.data?.nodes} order={NODE_STATUSES} />
      </div>
      <ThroughputChart data={throughput.data} />
    </>
  );
}
