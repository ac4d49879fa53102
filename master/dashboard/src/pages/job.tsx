// One job: what it is, its payload, result or error, its attempts and its events; cancel, retry, re-prioritise.
import { useState } from "preact/hooks";
import { api, type Job, type JobAttempt, type JobEvent, type Page } from "../api.js";
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

export function JobPage({ id }: { id: string }) {
  const { me } = useSession();
  const job = usePoll(() => api<Job>("GET", `/api/v1/jobs/${encodeURIComponent(id)}`), 3000, `job-${id}`);
  const events = usePoll(() => api<Page<JobEvent>>("GET", `/api/v1/jobs/${encodeURIComponent(id)}/events?limit=500`), 3000, `events-${id}`);
  const attempts = usePoll(() => api<{ items: JobAttempt[] }>("GET", `/api/v1/jobs/${encodeURIComponent(id)}/attempts`), 3000, `attempts-${id}`);
  const [actionError, setActionError] = useState<string | undefined>(undefined);
  const [priority, setPriority] = useState("");
  const act = async (method: string, path: string, body?: unknown) => {
    setActionError(undefined);
    try {
      await api(method, path, body);
      job.reload();
      events.reload();
      attempts.reload();
    } catch (failure) {
      setActionError((failure as Error).message);
    }
  };
  const current = job.data;
  const canAct = me.role === "admin" || me.role === "client";
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
          {canAct ? (
            <section class="card job-actions" aria-label="Actions">
              {(WAITING.has(current.status) || (current.status === "running" && !current.cancel_requested)) && (
                <button type="button" onClick={() => void act("POST", `${base}/cancel`)}>
                  Cancel job
                </button>
              )}
              {(current.status === "failed" || current.status === "canceled") && (
                <button type="button" onClick={() => void act("POST", `${base}/retry`)}>
                  Retry job
                </button>
              )}
              {WAITING.has(current.status) && (
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
              <dd class="mono">{current.node_id ?? "–"}</dd>
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
              <time dateTime={event.created_at}>{time(event.created_at)}</time> <strong>{event.event_type}</strong>
              {Object.keys(event.details).length ? <span class="muted mono"> {JSON.stringify(event.details)}</span> : null}
            </li>
          ))}
        </ol>
      </section>
    </>
  );
}
