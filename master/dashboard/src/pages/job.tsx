// One job: what it is, its payload, result or error, its attempts and its events; cancel, retry, re-prioritise.
import { useState } from "preact/hooks";
import { api, type Job, type JobAttempt, type JobEvent, type Page, type WhyAnswer } from "../api.js";
import { ErrorNote, Json, PageHeader, Status, Updated } from "../components/common.js";
import { time, usePoll, useSession } from "../hooks.js";

const PRIORITIES = ["live", "high", "medium", "low", "batch"];
const WAITING = new Set(["blocked", "scheduled", "pending"]);

/** What became of the error, in words: whether the job will run again, and why not. */
function errorWords(job: Job): string {
  if (job.status === "failed") {
    if (job.failure_reason === "max_retries_exceeded") {
      return job.max_retries === 0 ? "failed for good: the job allows no retries" : `failed for good: all ${job.max_retries} retries used`;
    }
    if (job.failure_reason === "non_retryable") return "failed for good: the handler said not to retry";
    return `failed for good${job.failure_reason ? ` (${job.failure_reason})` : ""}`;
  }
  if (job.status === "scheduled" || job.status === "pending") return `will run again: retry ${job.retry_count} of ${job.max_retries}`;
  return job.error?.retryable ? "retryable" : "not retryable";
}

const LEASE_END: Record<string, string> = {
  node_dead: "its node stopped answering",
  node_left: "its node left",
  lease_expired: "its node stopped listing it",
  stalled: "it ran past twice its timeout",
};

/** The first line of an event's error, if it has one. */
function errorOf(details: Record<string, unknown>): string {
  const error = details.error as { message?: unknown } | null | undefined;
  return typeof error?.message === "string" ? `: ${error.message.split("\n")[0] ?? ""}` : "";
}

/** One event of a job's history in words: what happened, on which node, and why. */
export function eventWords(event: JobEvent, nodeName: (id: unknown) => string): string {
  const d = event.details;
  const attempt = event.attempt !== undefined ? ` (attempt ${event.attempt})` : "";
  const on = event.node_id ? ` on ${nodeName(event.node_id)}` : "";
  const by = event.client_id ? ` by ${event.client_id}` : "";
  switch (event.event_type) {
    case "job.submitted":
      return `Submitted${by}: ${String(d.type ?? "")}, ${String(d.priority ?? "")} priority`;
    case "job.assigned":
      return `Handed to ${nodeName(event.node_id)}${attempt}`;
    case "job.completed":
      return `Completed${on}${attempt}`;
    case "job.retry_scheduled":
      return `Failed${on}${attempt}${errorOf(d)}; it will run again`;
    case "job.failed":
      if (d.failure_reason === "dependency_failed") return "Failed: a job it depends on failed or was canceled";
      return `Failed for good${on}${attempt}${errorOf(d)}${d.failure_reason === "max_retries_exceeded" ? " (no retries left)" : d.failure_reason === "non_retryable" ? " (not retryable)" : ""}`;
    case "job.cancel_requested":
      return `Cancel asked${by}: its node is told to stop it`;
    case "job.canceled":
      return `Canceled${by}${on}${attempt}`;
    case "job.reassigned":
    case "job.stalled":
      return `Taken back from ${nodeName(d.node_id)}${attempt}: ${LEASE_END[String(d.reason)] ?? String(d.reason ?? "")}`;
    case "job.released":
      return `Its dependencies completed: ${String(d.status ?? "ready")}`;
    case "job.retried":
      return `Retried${by}`;
    case "job.priority_changed":
      return `Priority changed${by} from ${String(d.from)} to ${String(d.to)}`;
    case "job.promoted":
      return "Its time came: ready to run";
    case "job.progress":
      return `Progress ${String(d.progress)}%${typeof d.message === "string" ? `: ${d.message}` : ""}`;
    default:
      return event.event_type;
  }
}

export function JobPage({ id }: { id: string }) {
  const { me } = useSession();
  const job = usePoll(() => api<Job>("GET", `/api/v1/jobs/${encodeURIComponent(id)}`), 3000, `job-${id}`);
  const events = usePoll(() => api<Page<JobEvent>>("GET", `/api/v1/jobs/${encodeURIComponent(id)}/events?limit=500`), 3000, `events-${id}`);
  const attempts = usePoll(() => api<{ items: JobAttempt[] }>("GET", `/api/v1/jobs/${encodeURIComponent(id)}/attempts`), 3000, `attempts-${id}`);
  const why = usePoll(() => api<WhyAnswer>("GET", `/api/v1/jobs/${encodeURIComponent(id)}/why`), 3000, `why-${id}`);
  const [actionError, setActionError] = useState<string | undefined>(undefined);
  const [priority, setPriority] = useState("");
  const act = async (method: string, path: string, body?: unknown) => {
    setActionError(undefined);
    try {
      await api(method, path, body);
      job.reload();
      events.reload();
      attempts.reload();
      why.reload();
    } catch (failure) {
      setActionError((failure as Error).message);
    }
  };
  const current = job.data;
  const canAct = me.role === "admin" || me.role === "client";
  // Node names from the job's attempts (a client may not list nodes).
  const names = new Map((attempts.data?.items ?? []).map((attempt) => [attempt.node_id, attempt.node_name ?? attempt.node_id]));
  const nodeName = (nodeId: unknown) => (typeof nodeId === "string" ? (names.get(nodeId) ?? nodeId.slice(0, 8)) : "?");
  const actions = current
    ? {
        cancel: WAITING.has(current.status) || (current.status === "running" && !current.cancel_requested),
        retry: current.status === "failed" || current.status === "canceled",
        priority: WAITING.has(current.status),
      }
    : undefined;
  const base = `/api/v1/jobs/${encodeURIComponent(id)}`;
  return (
    <>
      <PageHeader title={current ? `${current.type} job` : "Job"}>
        <Updated at={job.updatedAt} />
      </PageHeader>
      <p>
        <a href="#/jobs">← All jobs</a>
      </p>
      <ErrorNote message={job.error ?? actionError} />
      {current ? (
        <>
          {canAct && actions && (actions.cancel || actions.retry || actions.priority) ? (
            <section class="card job-actions" aria-label="Actions">
              {actions.cancel && (
                <button type="button" onClick={() => void act("POST", `${base}/cancel`)}>
                  Cancel job
                </button>
              )}
              {actions.retry && (
                <button type="button" onClick={() => void act("POST", `${base}/retry`)}>
                  Retry job
                </button>
              )}
              {actions.priority && (
                <form
                  class="inline"
                  onSubmit={(e) => {
                    e.preventDefault();
                    if (priority) void act("PATCH", base, { priority });
                  }}
                >
                  <label for="new-priority">Priority</label>
                  <select id="new-priority" value={priority || current.priority} onChange={(e) => setPriority(e.currentTarget.value)}>
                    {PRIORITIES.map((p) => (
                      <option key={p} value={p}>
                        {p}
                      </option>
                    ))}
                  </select>
                  <button type="submit">Change priority</button>
                </form>
              )}
            </section>
          ) : null}
          {WAITING.has(current.status) && why.data && why.data.reasons.length > 0 ? (
            <section class="card" aria-labelledby="h-why">
              <h2 id="h-why">Why waiting</h2>
              <ul class="why">
                {why.data.reasons.map((reason) => (
                  <li key={reason.code} data-reason={reason.code}>
                    {reason.message} <span class="muted mono">{reason.code}</span>
                  </li>
                ))}
              </ul>
            </section>
          ) : null}
          <section class="card" aria-labelledby="h-summary">
            <h2 id="h-summary">Summary</h2>
            <dl class="facts">
              <dt>Id</dt>
              <dd class="mono">{current.id}</dd>
              <dt>Status</dt>
              <dd>
                <Status value={current.status} />
                {current.cancel_requested && current.status === "running" ? " (asked to stop)" : null}
                {current.failure_reason ? ` — ${current.failure_reason}` : null}
              </dd>
              <dt>Priority</dt>
              <dd>
                {current.priority}
                {current.effective_priority !== current.priority ? ` (now ${current.effective_priority})` : null}
              </dd>
              <dt>Attempts</dt>
              <dd>
                attempt {current.attempt}, {current.retry_count} of {current.max_retries} retries used
              </dd>
              <dt>Node</dt>
              <dd class="mono">{current.node_id ? nodeName(current.node_id) : "–"}</dd>
              <dt>Progress</dt>
              <dd>
                {current.progress === null ? "–" : `${current.progress}%`} {current.progress_message ?? ""}
              </dd>
              <dt>Submitted</dt>
              <dd>{time(current.created_at)}</dd>
              <dt>Started</dt>
              <dd>{time(current.started_at)}</dd>
              <dt>Finished</dt>
              <dd>{time(current.finished_at)}</dd>
              <dt>Requires</dt>
              <dd>{current.requires.length ? current.requires.join(", ") : "–"}</dd>
              <dt>Tags</dt>
              <dd>{Object.keys(current.tags).length ? Object.entries(current.tags).map(([k, v]) => `${k}=${v}`).join(", ") : "–"}</dd>
            </dl>
          </section>
          <section class="card" aria-labelledby="h-payload">
            <h2 id="h-payload">Payload</h2>
            <Json value={current.payload} label="Payload" />
          </section>
          {current.result !== null ? (
            <section class="card" aria-labelledby="h-result">
              <h2 id="h-result">Result</h2>
              <Json value={current.result} label="Result" />
            </section>
          ) : null}
          {current.error ? (
            <section class="card" aria-labelledby="h-error">
              <h2 id="h-error">Error</h2>
              <p>
                {current.error.code ? <span class="mono">{current.error.code}: </span> : null}
                {errorWords(current)}
              </p>
              <pre class="json">{current.error.message}</pre>
            </section>
          ) : null}
        </>
      ) : null}
      <section class="card" aria-labelledby="h-attempts">
        <h2 id="h-attempts">Attempts</h2>
        {(attempts.data?.items ?? []).length === 0 ? (
          <p class="muted">Not handed to a node yet.</p>
        ) : (
          <ol class="attempts">
            {(attempts.data?.items ?? []).map((attempt) => (
              <li key={attempt.attempt} data-attempt={attempt.attempt}>
                <p>
                  <strong>Attempt {attempt.attempt}</strong> on <span class="mono">{attempt.node_name ?? attempt.node_id}</span>:{" "}
                  <Status value={attempt.outcome} /> <time dateTime={attempt.started_at}>{time(attempt.started_at)}</time>
                  {attempt.finished_at ? (
                    <>
                      {" → "}
                      <time dateTime={attempt.finished_at}>{time(attempt.finished_at)}</time>
                    </>
                  ) : null}
                  {attempt.error ? <span class="muted"> — {attempt.error.message.split("\n")[0]}</span> : null}
                </p>
                {attempt.log_tail !== null ? (
                  <pre class="log" tabIndex={0} aria-label={`Output of attempt ${attempt.attempt}`}>
                    {attempt.log_tail}
                  </pre>
                ) : null}
              </li>
            ))}
          </ol>
        )}
      </section>
      <section class="card" aria-labelledby="h-events">
        <h2 id="h-events">Events</h2>
        <ol class="timeline">
          {(events.data?.items ?? []).map((event, index) => (
            <li key={`${index}-${event.event_type}`}>
              <time dateTime={event.created_at}>{time(event.created_at)}</time> {eventWords(event, nodeName)}{" "}
              <span class="muted mono">{event.event_type}</span>
              <details>
                <summary>JSON</summary>
                <pre class="json">{JSON.stringify(event, null, 2)}</pre>
              </details>
            </li>
          ))}
        </ol>
      </section>
    </>
  );
}
