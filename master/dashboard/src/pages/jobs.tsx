// Jobs: filter by status, type, priority, node, tag; newest first; pages by cursor.
import { useState } from "preact/hooks";
import { api, query, type Job, type Node, type Page } from "../api.js";
import { BulkActions } from "../components/bulk-actions.js";
import { Empty, ErrorNote, PageHeader, Pager, Status, Updated } from "../components/common.js";
import { ago, shortId, usePoll, useSession } from "../hooks.js";

const STATUSES = ["blocked", "scheduled", "pending", "running", "completed", "failed", "canceled"];
const PRIORITIES = ["live", "high", "medium", "low", "batch"];
const FAILURE_REASONS = ["max_retries_exceeded", "non_retryable", "dependency_failed"];

/** The list's filter as a bulk action's (which has no node filter). */
function bulkFilter(applied: Filters): Record<string, string> {
  return Object.fromEntries(Object.entries(applied).filter(([name, value]) => name !== "node_id" && value !== ""));
}

interface Filters {
  status: string;
  type: string;
  priority: string;
  node_id: string;
  tag: string;
  failure_reason: string;
}

function fromParams(params: URLSearchParams): Filters {
  return {
    status: params.get("status") ?? "",
    type: params.get("type") ?? "",
    priority: params.get("priority") ?? "",
    node_id: params.get("node_id") ?? "",
    tag: params.get("tag") ?? "",
    failure_reason: params.get("failure_reason") ?? "",
  };
}

export function Jobs({ params }: { params: URLSearchParams }) {
  const applied = fromParams(params);
  const [draft, setDraft] = useState<Filters>(applied);
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const key = JSON.stringify([applied, cursor]);
  const jobs = usePoll(() => api<Page<Job>>("GET", `/api/v1/jobs${query({ ...applied, limit: 25, cursor })}`), 5000, key);
  // Node names for admins, who may list nodes; others see the node's short id.
  const { me } = useSession();
  const nodes = usePoll(
    () => (me.role === "admin" ? api<Page<Node>>("GET", "/api/v1/nodes?limit=200") : Promise.resolve({ items: [], next_cursor: null })),
    15_000,
    "job-list-nodes",
  );
  const names = new Map((nodes.data?.items ?? []).map((node) => [node.id, node.name]));
  const apply = (event: Event) => {
    event.preventDefault();
    setCursors([]);
    window.location.hash = `#/jobs${query({ ...draft })}`;
  };
  const field = (name: keyof Filters) => ({
    id: `filter-${name}`,
    name,
    value: draft[name],
    onInput: (e: Event) => setDraft({ ...draft, [name]: (e.currentTarget as HTMLInputElement).value }),
  });
  const items = jobs.data?.items;
  return (
    <>
      <PageHeader title="Jobs">
        <Updated at={jobs.updatedAt} />
      </PageHeader>
      <form class="filters" onSubmit={apply} aria-label="Filter jobs">
        <div>
          <label for="filter-status">Status</label>
          <select {...field("status")}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="filter-type">Type</label>
          <input {...field("type")} placeholder="any" />
        </div>
        <div>
          <label for="filter-priority">Priority</label>
          <select {...field("priority")}>
            <option value="">any</option>
            {PRIORITIES.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="filter-node_id">Node id</label>
          <input {...field("node_id")} placeholder="any" />
        </div>
        <div>
          <label for="filter-tag">Tag (key:value)</label>
          <input {...field("tag")} placeholder="any" />
        </div>
        <div>
          <label for="filter-failure_reason">Failure reason</label>
          <select {...field("failure_reason")}>
            <option value="">any</option>
            {FAILURE_REASONS.map((r) => (
              <option key={r} value={r}>
                {r.replace(/_/g, " ")}
              </option>
            ))}
          </select>
        </div>
        <button type="submit">Apply</button>
      </form>
      <BulkActions
        key={JSON.stringify(applied)}
        filter={bulkFilter(applied)}
        blocker={applied.node_id ? "These do not take a node filter: clear Node id to act on all matching jobs." : undefined}
        onDone={jobs.reload}
      />
      <ErrorNote message={jobs.error} />
      {items && items.length === 0 ? <Empty>No jobs match these filters.</Empty> : null}
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Jobs, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Type</th>
              <th scope="col" class="wide">Priority</th>
              <th scope="col">Status</th>
              <th scope="col" class="wide">Attempt</th>
              <th scope="col">Node</th>
              <th scope="col" class="wide">Tags</th>
              <th scope="col" class="wide">Submitted</th>
            </tr>
          </thead>
          <tbody>
            {(items ?? []).map((job) => (
              <tr key={job.id} data-job={job.id}>
                <th scope="row">
                  <a href={`#/jobs/${job.id}`} class="mono">
                    {shortId(job.id)}
                  </a>
                </th>
                <td>{job.type}</td>
                <td class="wide">
                  {job.effective_priority}
                  {job.effective_priority !== job.priority ? <span class="muted"> (asked {job.priority})</span> : null}
                </td>
                <td>
                  <Status value={job.status} />
                  {job.cancel_requested && job.status === "running" ? <span class="muted"> stopping</span> : null}
                </td>
                <td class="wide">{job.attempt}</td>
                <td>
                  {job.node_id ? (
                    <a href={`#/jobs${query({ node_id: job.node_id })}`} class={names.has(job.node_id) ? undefined : "mono"}>
                      {names.get(job.node_id) ?? shortId(job.node_id)}
                    </a>
                  ) : (
                    "–"
                  )}
                </td>
                <td class="wide">
                  {Object.entries(job.tags)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(" ") || "–"}
                </td>
                <td class="wide">
                  <time dateTime={job.created_at}>{ago(job.created_at)}</time>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager
        hasPrevious={cursors.length > 0}
        nextCursor={jobs.data?.next_cursor}
        onPrevious={() => setCursors(cursors.slice(0, -1))}
        onNext={() => jobs.data?.next_cursor && setCursors([...cursors, jobs.data.next_cursor])}
      />
    </>
  );
}
