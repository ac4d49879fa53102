// Small pieces every page uses.
import type { ComponentChildren } from "preact";

/** A status word with a colour; the word is always there, so colour is never the only signal. */
export function Status({ value }: { value: string }) {
  return <span class={`status status-${value}`}>{value.replace("_", " ")}</span>;
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

export function ErrorNote({ message }: { message: string | undefined }) {
  return message ? (
    <p class="error-note" role="alert">
      {message}
    </p>
  ) : null;
}

/** When the data on screen was loaded; fixed width, so the page does not move as it changes. */
export function Updated({ at }: { at: Date | undefined }) {
  return (
    <span class="updated" aria-live="off">
      {at ? `updated ${at.toLocaleTimeString(undefined, { hourCycle: "h23" })}` : "loading…"}
    </span>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="page-header">
      <h1>{title}</h1>
      <div class="page-header-side">{children}</div>
    </div>
  );
}

/** Previous / next page over cursors; `stack` holds the cursors of the pages before. */
export function Pager(props: { hasPrevious: boolean; nextCursor: string | null | undefined; onPrevious: () => void; onNext: () => void }) {
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" onClick={props.onPrevious} disabled={!props.hasPrevious}>
        ← Newer
      </button>
      <button type="button" onClick={props.onNext} disabled={!props.nextCursor}>
        Older →
      </button>
    </nav>
  );
}

export function Json({ value, label }: { value: unknown; label: string }) {
  return (
    <pre class="json" tabIndex={0} aria-label={label}>
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}
