// The audit log, newest first, filtered by event, entity and client.
import { useState } from "preact/hooks";
import { api, query, type AuditEntry, type Page } from "../api.js";
import { Empty, ErrorNote, PageHeader, Pager, Updated } from "../components/common.js";
import { shortId, time, usePoll } from "../hooks.js";

interface Filters {
  event_type: string;
  entity_type: string;
  entity_id: string;
  client_id: string;
}

const EMPTY: Filters = { event_type: "", entity_type: "", entity_id: "", client_id: "" };
const LABELS: Record<keyof Filters, string> = { event_type: "Event", entity_type: "Entity type", entity_id: "Entity id", client_id: "Client id" };

export function Audit() {
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [applied, setApplied] = useState<Filters>(EMPTY);
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const audit = usePoll(() => api<Page<AuditEntry>>("GET", `/api/v1/audit${query({ ...applied, limit: 50, cursor })}`), 10_000, JSON.stringify([applied, cursor]));
  const items = audit.data?.items;
  return (
    <>
      <PageHeader title="Audit log">
        <Updated at={audit.updatedAt} />
      </PageHeader>
      <form
        class="filters"
        aria-label="Filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          setCursors([]);
          setApplied(draft);
        }}
      >
        {(Object.keys(LABELS) as (keyof Filters)[]).map((name) => (
          <div key={name}>
            <label for={`audit-${name}`}>{LABELS[name]}</label>
            <input id={`audit-${name}`} value={draft[name]} placeholder="any" onInput={(e) => setDraft({ ...draft, [name]: e.currentTarget.value })} />
          </div>
        ))}
        <button type="submit">Apply</button>
      </form>
      <ErrorNote message={audit.error} />
      {items && items.length === 0 ? <Empty>No audit entries match.</Empty> : null}
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Audit log, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Event</th>
              <th scope="col">Entity</th>
              <th scope="col">By</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {(items ?? []).map((entry) => (
              <tr key={entry.id}>
                <td>
                  <time dateTime={entry.created_at}>{time(entry.created_at)}</time>
                </td>
                <th scope="row">{entry.event_type}</th>
                <td class="mono">
                  {entry.entity_type === "job" ? <a href={`#/jobs/${entry.entity_id}`}>{shortId(entry.entity_id)}</a> : `${entry.entity_type} ${shortId(entry.entity_id)}`}
                </td>
                <td>{entry.client_id ?? "master"}</td>
                <td class="mono muted">{JSON.stringify(entry.details)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager
        hasPrevious={cursors.length > 0}
        nextCursor={audit.data?.next_cursor}
        onPrevious={() => setCursors(cursors.slice(0, -1))}
        onNext={() => audit.data?.next_cursor && setCursors([...cursors, audit.data.next_cursor])}
      />
    </>
  );
}
