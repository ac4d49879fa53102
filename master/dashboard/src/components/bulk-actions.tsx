// "Retry all matching" and "Cancel all matching" on the jobs list: the list's filter,
// counted first by a dry run, then acted on once confirmed (POST /api/v1/jobs/cancel|retry).
import { useState } from "preact/hooks";
import { api, type BulkOutcome } from "../api.js";

/** The most a dashboard action takes at once (the API's ceiling). */
const MAX = 10_000;

type Action = "cancel" | "retry";

const WORDS: Record<Action, { button: string; past: string; unchanged: string }> = {
  cancel: { button: "Cancel all matching", past: "canceled", unchanged: "already finished or already asked to stop" },
  retry: { button: "Retry all matching", past: "retried", unchanged: "not failed or canceled, or waiting on a failed dependency" },
};

type State =
  | { step: "idle" }
  | { step: "counting"; action: Action }
  | { step: "confirm"; action: Action; preview: BulkOutcome }
  | { step: "acting"; action: Action; preview: BulkOutcome }
  | { step: "done"; action: Action; outcome: BulkOutcome }
  | { step: "failed"; message: string };

export function BulkActions({ filter, blocker, onDone }: { filter: Record<string, string>; blocker?: string | undefined; onDone: () => void }) {
  const [state, setState] = useState<State>({ step: "idle" });
  const empty = Object.keys(filter).length === 0;
  const call = (action: Action, dryRun: boolean) => api<BulkOutcome>("POST", `/api/v1/jobs/${action}`, { filter, max: MAX, dry_run: dryRun });
  const count = async (action: Action) => {
    setState({ step: "counting", action });
    try {
      setState({ step: "confirm", action, preview: await call(action, true) });
    } catch (failure) {
      setState({ step: "failed", message: (failure as Error).message });
    }
  };
  const act = async (action: Action, preview: BulkOutcome) => {
    setState({ step: "acting", action, preview });
    try {
      const outcome = await call(action, false);
      setState({ step: "done", action, outcome });
      onDone();
    } catch (failure) {
      setState({ step: "failed", message: (failure as Error).message });
    }
  };
  const busy = state.step === "counting" || state.step === "acting" || state.step === "confirm";
  const note = blocker ?? (empty ? "Filter the list first: these act on every job the filter matches, and an empty filter is refused." : undefined);
  return (
    <section class="bulk-area" aria-label="Act on all matching jobs">
      <div class="bulk">
        {(["retry", "cancel"] as const).map((action) => (
          <button key={action} type="button" disabled={note !== undefined || busy} onClick={() => void count(action)}>
            {WORDS[action].button}
          </button>
        ))}
        {note ? <span class="muted">{note}</span> : null}
        {state.step === "counting" ? <span class="muted">Counting…</span> : null}
      </div>
      {state.step === "confirm" || state.step === "acting" ? <Confirm state={state} onAct={() => void act(state.action, state.preview)} onBack={() => setState({ step: "idle" })} /> : null}
      <div aria-live="polite">
        {state.step === "done" ? (
          <p class="bulk-result">
            {state.outcome.changed} job(s) {WORDS[state.action].past} of {state.outcome.matched} matching
            {state.outcome.more ? `; more match: run it again for the next ${MAX.toLocaleString("en-US")}` : ""}.
          </p>
        ) : null}
        {state.step === "failed" ? (
          <p class="error-note" role="alert">
            {state.message}
          </p>
        ) : null}
      </div>
    </section>
  );
}

function Confirm({ state, onAct, onBack }: { state: { action: Action; preview: BulkOutcome; step: string }; onAct: () => void; onBack: () => void }) {
  const { action, preview } = state;
  const words = WORDS[action];
  const left = preview.matched - preview.changed;
  return (
    <div class="bulk-confirm" role="dialog" aria-label={`Confirm: ${words.button.toLowerCase()}`}>
      <p>
        <strong>
          {preview.matched.toLocaleString("en-US")}
          {preview.more ? "+" : ""} job(s) match this filter
        </strong>
        {preview.more ? ` (more than ${MAX.toLocaleString("en-US")}: the oldest ${MAX.toLocaleString("en-US")} are taken now)` : ""}.{" "}
        {preview.changed === 0
          ? `None of them would be ${words.past}: they are all ${words.unchanged}.`
          : `${preview.changed.toLocaleString("en-US")} would be ${words.past}${left > 0 ? `; ${left.toLocaleString("en-US")} ${left === 1 ? "is" : "are"} ${words.unchanged}` : ""}.`}
      </p>
      {preview.changed > 0 ? (
        <button type="button" class={action === "cancel" ? "danger" : undefined} disabled={state.step === "acting"} onClick={onAct}>
          {action === "cancel" ? "Cancel" : "Retry"} {preview.changed.toLocaleString("en-US")} job(s)
        </button>
      ) : null}{" "}
      <button type="button" disabled={state.step === "acting"} onClick={onBack}>
        {preview.changed > 0 ? "Do nothing" : "Back"}
      </button>
    </div>
  );
}
