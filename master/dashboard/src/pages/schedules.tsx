// Recurring schedules.
import { api, type Page, type Schedule } from "../api.js";
import { Empty, ErrorNote, PageHeader, Updated } from "../components/common.js";
import { time, usePoll } from "../hooks.js";

export function Schedules() {
  const schedules = usePoll(() => api<Page<Schedule>>("GET", "/api/v1/schedules?limit=500"), 15_000, "schedules");
  const items = schedules.data?.items;
  return (
    <>
      <PageHeader title="Schedules">
        <Updated at={schedules.updatedAt} />
      </PageHeader>
      <ErrorNote message={schedules.error} />
      {items && items.length === 0 ? <Empty>No schedules. Create one with: gaffer schedules create.</Empty> : null}
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Schedules</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Cron</th>
              <th scope="col">Time zone</th>
              <th scope="col">Job type</th>
              <th scope="col">Enabled</th>
              <th scope="col">Next run</th>
              <th scope="col">Last run</th>
              <th scope="col">Last skipped tick</th>
            </tr>
          </thead>
          <tbody>
            {(items ?? []).map((schedule) => (
              <tr key={schedule.id}>
                <th scope="row">
                  <a href={`#/jobs?tag=schedule:${schedule.id}`}>{schedule.name}</a>
                </th>
                <td class="mono">{schedule.cron}</td>
                <td>{schedule.timezone}</td>
                <td>{schedule.job.type}</td>
                <td>{schedule.enabled ? "yes" : "no"}</td>
                <td>
                  {time(schedule.next_run_at, schedule.timezone)}
                  {schedule.next_run_at && time(schedule.next_run_at) !== time(schedule.next_run_at, schedule.timezone) ? (
                    <span class="muted"> ({time(schedule.next_run_at)} here)</span>
                  ) : null}
                </td>
                <td>{time(schedule.last_run_at)}</td>
                <td>
                  {time(schedule.last_skipped_at)}
                  {schedule.last_skip_reason ? <span class="muted"> ({schedule.last_skip_reason}: {schedule.last_skip_message})</span> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
