// Job types (API.md §5a): everyone sees each type's setting and counts; admins set a
// limit of running jobs, pause and resume.
import { useState } from "preact/hooks";
import { api, query, type JobType } from "../api.js";
import { Empty, ErrorNote, PageHeader, Updated } from "../components/common.js";
import { usePoll, useSession } from "../hooks.js";

/** The limit field of one type: a whole number, or empty for none. */
function LimitForm({ type, onSet }: { type: JobType; onSet: (maxRunning: number | null) => Promise<void> }) {
  const [value, setValue] = useState(type.max_running === null ? "" : String(type.max_running));
  const [invalid, setInvalid] = useState(false);
  const submit = (event: Event) => {
    event.preventDefault();
    const text = value.trim();
    const limit = text === "" ? null : Number(text);
    if (limit !== null && (!Number.isInteger(limit) || limit < 0)) return setInvalid(true);
    setInvalid(false);
    void onSet(limit);
  };
  const id = `limit-${type.type}`;
  return (
    <form class="inline-form" onSubmit={submit} aria-label={`Limit of ${type.type}`}>
      <label for={id} class="sr-only">
        Most running jobs of {type.type} (empty: no limit)
      </label>
      <input id={id} inputMode="numeric" size={5} value={value} placeholder="none" aria-invalid={invalid} onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)} />
      <button type="submit">Set limit</button>
      {invalid ? <span class="field-error">a whole number, or empty for none</span> : null}
    </form>
  );
}

export function Types() {
  const { me } = useSession();
  const types = usePoll(() => api<{ items: JobType[] }>("GET", "/api/v1/types"), 5000, "types");
  const [actionError, setActionError] = useState<string | undefined>(undefined);
  const admin = me.role === "admin";
  const set = async (type: JobType, body: { max_running?: number | null; paused?: boolean }) => {
    setActionError(undefined);
    try {
      await api("PUT", `/api/v1/types/${encodeURIComponent(type.type)}`, body);
      types.reload();
    } catch (failure) {
      setActionError(`Could not change ${type.type}: ${(failure as Error).message}`);
    }
  };
  const items = types.data?.items;
  return (
    <>
      <PageHeader title="Job types">
        <Updated at={types.updatedAt} />
      </PageHeader>
      <p class="muted">
        A paused type's jobs are not handed out (running ones go on); a limit caps how many of a type run at once across the cluster. Neither holds back any other type.
        {admin ? null : " Only an admin changes them."}
      </p>
      <ErrorNote message={types.error ?? actionError} />
      {items && items.length === 0 ? <Empty>No job has been submitted yet.</Empty> : null}
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Job types</caption>
          <thead>
            <tr>
              <th scope="col">Type</th>
              <th scope="col">State</th>
              <th scope="col">Pending</th>
              <th scope="col">Running</th>
              <th scope="col">Limit</th>
              <th scope="col" class="wide">Completed (1 h)</th>
              <th scope="col" class="wide">Failed (1 h)</th>
              {admin ? (
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              ) : null}
            </tr>
          </thead>
          <tbody>
            {(items ?? []).map((type) => (
              <tr key={type.type} data-type={type.type}>
                <th scope="row">
                  <a href={`#/jobs${query({ type: type.type })}`}>{type.type}</a>
                </th>
                <td>{type.paused ? <span class="status status-paused">paused</span> : <span class="status status-active">active</span>}</td>
                <td class="num">{type.pending}</td>
                <td class="num">{type.running}</td>
                <td class="limit">{admin ? <LimitForm key={`${type.type}-${type.max_running}`} type={type} onSet={(limit) => set(type, { max_running: limit })} /> : (type.max_running ?? "none")}</td>
                <td class="num wide">{type.completed_1h}</td>
                <td class="num wide">{type.failed_1h}</td>
                {admin ? (
                  <td class="actions">
                    {type.paused ? (
                      <button type="button" onClick={() => void set(type, { paused: false })} aria-label={`Resume ${type.type}`}>
                        Resume
                      </button>
                    ) : (
                      <button type="button" onClick={() => void set(type, { paused: true })} aria-label={`Pause ${type.type}`}>
                        Pause
                      </button>
                    )}
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
