/** Small pieces every screen uses: labelled fields with their errors, states, badges. */
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

import { ApiError, type ApprovalState, itemsOf, unwrap } from "./api.ts";

let counter = 0;
/** Return an id unique in the page (for label/aria-describedby pairs). */
export function useId(prefix: string): string {
  const [id] = useState(() => `${prefix}-${++counter}`);
  return id;
}

/** A labelled input with its hint and, when the service named it, its error right below it. */
export function Field(props: {
  label: string;
  error?: string | undefined;
  hint?: string;
  required?: boolean;
  children: (attrs: Record<string, unknown>) => ComponentChildren;
}) {
  const id = useId("field");
  const described = [props.hint ? `${id}-hint` : null, props.error ? `${id}-error` : null]
    .filter(Boolean)
    .join(" ");
  // The label holds only the field's name (hint and error are described-by, not part of it).
  return (
    <div class="field">
      <label htmlFor={id}>
        {props.label}
        {props.required && <span class="required" aria-hidden="true" />}
      </label>
      {props.children({
        id,
        required: props.required,
        "aria-invalid": props.error ? "true" : undefined,
        "aria-describedby": described || undefined,
      })}
      {props.hint && <small id={`${id}-hint`}>{props.hint}</small>}
      {props.error && (
        <small id={`${id}-error`} class="field-error">
          {props.error}
        </small>
      )}
    </div>
  );
}

/** What went wrong, said where the person looks: offline, 412 and the rest. */
export function ErrorNote(props: { error: unknown; onRetry?: () => void; notFound?: string }) {
  const error = props.error;
  if (props.notFound && error instanceof ApiError && error.status === 404) {
    return (
      <p role="alert" class="muted">
        {props.notFound}
      </p>
    );
  }
  if (!(error instanceof ApiError)) {
    return (
      <p role="alert" class="error">
        {error instanceof Error ? error.message : String(error)}
      </p>
    );
  }
  if (error.status === 412) {
    return (
      <div role="alert" class="error">
        <p>
          <strong>This was changed by someone else</strong> since you opened it. Reload to see
          their change, then make yours again.
        </p>
        <button class="secondary" onClick={() => window.location.reload()}>
          Reload
        </button>
      </div>
    );
  }
  return (
    <div role="alert" class={error.offline ? "error offline" : "error"}>
      <p>
        {error.offline ? <strong>You are offline or the service is down. </strong> : null}
        {error.message}
      </p>
      {props.onRetry && (
        <button class="secondary" onClick={props.onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Loading(props: { what: string }) {
  return (
    <p aria-busy="true" role="status">
      Loading {props.what}…
    </p>
  );
}

const APPROVAL_LABEL: Record<ApprovalState, string> = {
  draft: "Draft",
  in_review: "In review",
  approved: "Approved",
  restricted: "Restricted",
  blocked: "Blocked",
  retired: "Retired",
};

export function approvalLabel(state: ApprovalState): string {
  return APPROVAL_LABEL[state];
}

export function ApprovalBadge(props: { state: ApprovalState }) {
  return <span class={`badge approval-${props.state}`}>{APPROVAL_LABEL[props.state]}</span>;
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "";
}

/** Return a value that follows `value` after `ms` without changes (search as you type). */
export function useDebounced<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

/** Return the list at `load`, reloaded by `reload()`; null while it loads. */
export function useList<T>(load: () => Promise<T[]>, deps: unknown[]) {
  const [items, setItems] = useState<T[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    setError(null);
    load().then(setItems, setError);
  }, [...deps, attempt]);
  return { items, error, reload: () => setAttempt((n) => n + 1) };
}

/** Return the items of the list call `call` makes (its first page); as `useList`. */
export function useItems<T>(call: () => Promise<{ data?: { items: T[] }; error?: unknown; response: Response }>, deps: unknown[]) {
  return useList<T>(() => itemsOf(call()), deps);
}

export function ListState<T>(props: {
  what: string;
  list: { items: T[] | null; error: unknown; reload: () => void };
  empty: string;
  /** What a 404 means here (e.g. no access to the model), said instead of the service's words. */
  notFound?: string;
  children: (items: T[]) => ComponentChildren;
}) {
  const { items, error, reload } = props.list;
  if (error) return <ErrorNote error={error} onRetry={reload} notFound={props.notFound} />;
  if (items === null) return <Loading what={props.what} />;
  if (items.length === 0)
    return (
      <p role="status" class="empty">
        {props.empty}
      </p>
    );
  return <>{props.children(items)}</>;
}

export type DialogRef = { current: HTMLDialogElement | null };

/** A dialog around a form: opened modal, closed by Esc or its close button. */
export function FormDialog(props: {
  id: string;
  title: string;
  dialog: DialogRef;
  onClose: () => void;
  children: ComponentChildren;
}) {
  const { dialog } = props;
  useEffect(() => dialog.current?.showModal(), []);
  return (
    <dialog ref={dialog} aria-labelledby={props.id} onClose={props.onClose}>
      <article>
        <header>
          <button type="button" aria-label="Close" {...({ rel: "prev" } as object)} onClick={() => dialog.current?.close()} />
          <h2 id={props.id}>{props.title}</h2>
        </header>
        {props.children}
      </article>
    </dialog>
  );
}

/** A form dialog's end: what went wrong, Cancel, and the submit button (busy while it works). */
export function DialogFooter(props: {
  dialog: DialogRef;
  failure: unknown;
  busy: boolean;
  submit: string;
  disabled?: boolean;
  /** Nothing to submit (a dialog that only shows): one Close button. */
  closeOnly?: boolean;
}) {
  if (props.closeOnly) {
    return (
      <footer>
        <button type="button" class="secondary" onClick={() => props.dialog.current?.close()}>
          Close
        </button>
      </footer>
    );
  }
  return (
    <>
      {props.failure ? <ErrorNote error={props.failure} /> : null}
      <footer>
        <button type="button" class="secondary" onClick={() => props.dialog.current?.close()}>
          Cancel
        </button>
        <button type="submit" aria-busy={props.busy} disabled={props.busy || props.disabled}>
          {props.submit}
        </button>
      </footer>
    </>
  );
}

/** Submit `call`; on a problem, put its field errors by their fields (focus the first). */
export function useSubmit(dialog: { current: HTMLElement | null }) {
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  async function submit(call: () => Promise<unknown>) {
    setBusy(true);
    setErrors({});
    setFailure(null);
    try {
      await call();
    } catch (error) {
      const fields = error instanceof ApiError ? error.fieldErrors() : {};
      setErrors(fields);
      if (Object.keys(fields).length === 0) setFailure(error);
      else requestAnimationFrame(() => dialog.current?.querySelector<HTMLElement>("[aria-invalid=true]")?.focus());
    } finally {
      setBusy(false);
    }
  }
  /** A form's onSubmit that sends `call` (the page is not left). */
  const onSubmit = (call: () => Promise<unknown>) => (e: Event) => {
    e.preventDefault();
    void submit(call);
  };
  return { errors, failure, busy, submit, onSubmit };
}

/**
 * A destructive action asked twice: the first button, then "Yes, …" naming what goes, or
 * "Keep it". `label` is the first button's accessible name (e.g. "Remove from edge-1").
 */
export function Confirm(props: {
  text: string;
  label?: string;
  question: string;
  yes: string;
  disabled?: boolean;
  /** A page's own action (not a row's): full size, marked as the dangerous one. */
  danger?: boolean;
  onConfirm: () => void;
}) {
  const size = props.danger ? "" : " small";
  const [asking, setAsking] = useState(false);
  const keep = useRef<HTMLButtonElement>(null);
  // The first button is gone once asked: focus goes to the safe answer, not to the page's top.
  useEffect(() => {
    if (asking) keep.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button
        class={props.danger ? "danger-button" : "secondary outline small"}
        aria-label={props.label}
        disabled={props.disabled}
        onClick={() => setAsking(true)}
      >
        {props.text}
      </button>
    );
  }
  return (
    <span role="group" aria-label={props.question} class="confirm">
      <button class={props.danger ? "danger-button" : "contrast small"} onClick={() => (setAsking(false), props.onConfirm())}>
        {props.yes}
      </button>{" "}
      <button class={`secondary outline${size}`} ref={keep} onClick={() => setAsking(false)}>
        Keep it
      </button>
    </span>
  );
}

/**
 * A table with a header row of `columns` (a `false` column is left out, e.g. Actions for a
 * viewer); the rows are the children. `caption` is said to screen readers only.
 */
export function Table(props: {
  columns: (string | false)[];
  caption?: string;
  labelledBy?: string;
  /** Its classes, when not just "striped" ("" for none). */
  class?: string;
  children: ComponentChildren;
}) {
  return (
    <table class={(props.class ?? "striped") || undefined} aria-labelledby={props.labelledBy}>
      {props.caption && <caption class="visually-hidden">{props.caption}</caption>}
      <thead>
        <tr>
          {props.columns.filter((c): c is string => c !== false).map((c) => (
            <th key={c} scope="col">
              {c}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>{props.children}</tbody>
    </table>
  );
}

/** A table row's header cell that links to the row's item: its page `href`, what it shows the children. */
export function RowLink(props: { href: string; children: ComponentChildren }) {
  return (
    <th scope="row">
      <a href={props.href}>{props.children}</a>
    </th>
  );
}

/** A list's states (error, loading, empty) and, once it has items, its table: one row per item. */
export function DataTable<T>(props: {
  what: string;
  list: { items: T[] | null; error: unknown; reload: () => void };
  empty: string;
  notFound?: string;
  columns: (string | false)[];
  caption?: string;
  labelledBy?: string;
  row: (item: T) => ComponentChildren;
  /** What the last action on an item said when it failed, above the list. */
  actionError?: unknown;
}) {
  return (
    <>
      {props.actionError ? <ErrorNote error={props.actionError} /> : null}
      <ListState what={props.what} list={props.list} empty={props.empty} notFound={props.notFound}>
        {(items) => (
          <Table columns={props.columns} caption={props.caption} labelledBy={props.labelledBy}>
            {items.map(props.row)}
          </Table>
        )}
      </ListState>
    </>
  );
}

/** The `<option>`s of a select: each choice's value and what a person reads. */
export function Options(props: { choices: readonly (readonly [string, string])[] }) {
  return (
    <>
      {props.choices.map(([value, label]) => (
        <option key={value} value={value}>
          {label}
        </option>
      ))}
    </>
  );
}

/**
 * Actions on a screen's items, one at a time: `busy` names the item being acted on, `error` is
 * what the last action's failure said (shown once, above the list).
 */
export function useAction() {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  async function run(key: string, call: () => Promise<unknown>): Promise<void> {
    setBusy(key);
    setError(null);
    try {
      await call();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  }
  return { busy, error, run };
}

/**
 * Return what `load` answers, asked again after the milliseconds `again(data)` says (null: not
 * again) until the screen goes; `reload()` asks at once. The last answer stays while a later
 * one fails (`error` says why); with `retryMs`, a failure after an answer is asked again then.
 */
export function usePolled<T>(
  load: () => Promise<T>,
  again: (data: T) => number | null,
  deps: unknown[],
  retryMs?: number,
) {
  const [data, setData] = useState<T | null>(null);
  const answered = useRef(false);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    async function ask() {
      try {
        const answer = await load();
        if (stopped) return;
        answered.current = true;
        setData(answer);
        setError(null);
        const ms = again(answer);
        if (ms !== null) timer = setTimeout(ask, ms);
      } catch (e) {
        if (stopped) return;
        setError(e);
        // Offline for a moment: try again later, the screen stays as it was.
        if (retryMs !== undefined && answered.current) timer = setTimeout(ask, retryMs);
      }
    }
    void ask();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [...deps, attempt]);
  return { data, setData, error, reload: () => setAttempt((n) => n + 1) };
}

/** A secret shown once, with Copy and what came of copying it (`what`: "key", "token"). */
export function Secret(props: { value: string; label: string; what: string }) {
  const [copied, setCopied] = useState<"yes" | "no" | null>(null);
  return (
    <>
      <div class="secret">
        <code aria-label={props.label}>{props.value}</code>
        <button
          type="button"
          class="secondary"
          onClick={() =>
            navigator.clipboard.writeText(props.value).then(
              () => setCopied("yes"),
              () => setCopied("no"),
            )
          }
        >
          Copy
        </button>
      </div>
      {copied && (
        <p role="status">
          {copied === "yes" ? "Copied to the clipboard." : `The browser did not allow copying: select the ${props.what} and copy it.`}
        </p>
      )}
    </>
  );
}

/**
 * A screen: a way back (when it has one), its heading with what stands beside it (badges,
 * its main button), then its content.
 */
export function Page(props: {
  id: string;
  title: ComponentChildren;
  back?: [href: string, text: string];
  aside?: ComponentChildren;
  children: ComponentChildren;
}) {
  return (
    <section aria-labelledby={props.id}>
      {props.back && (
        <p>
          <a href={props.back[0]}>← {props.back[1]}</a>
        </p>
      )}
      <div class="page-head">
        <h1 id={props.id}>{props.title}</h1>
        {props.aside}
      </div>
      {props.children}
    </section>
  );
}

/** A labelled select of a filter form (no field errors: any choice is a valid one). */
export function Choice(props: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  choices: readonly (readonly [string, string])[];
}) {
  return (
    <label>
      {props.label}
      <select value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
        <Options choices={props.choices} />
      </select>
    </label>
  );
}

/** A text field of a form: an input, or a textarea of `rows` lines, with its label, hint and error. */
export function TextField(props: {
  label: string;
  value: string;
  onInput: (e: { currentTarget: { value: string } }) => void;
  error: string | undefined;
  hint?: string;
  required?: boolean;
  rows?: number;
  type?: string;
}) {
  const { label, error, hint, required, rows, ...input } = props;
  return (
    <Field label={label} error={error} hint={hint} required={required}>
      {(a) => (rows ? <textarea {...a} rows={rows} value={input.value} onInput={input.onInput} /> : <input {...a} {...input} />)}
    </Field>
  );
}

/** Hand `blob` to the browser as a download named `name`. */
export function saveBlob(blob: Blob, name: string): void {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

/**
 * A button that downloads a file of a service. The call needs the bearer token, so it cannot be
 * a plain link: the file is fetched through the typed client (`parseAs: "blob"`) and handed to
 * the browser as `name`; what went wrong is said beside the button.
 */
export function DownloadButton(props: {
  text: string;
  label?: string;
  name: string;
  class?: string;
  call: () => Promise<{ data?: unknown; error?: unknown; response: Response }>;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  async function download() {
    setBusy(true);
    setError(null);
    try {
      saveBlob((await unwrap(props.call())).data as Blob, props.name);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return (
    <>
      <button type="button" class={props.class} aria-label={props.label} aria-busy={busy} disabled={busy} onClick={() => void download()}>
        {props.text}
      </button>
      {error ? <ErrorNote error={error} /> : null}
    </>
  );
}
