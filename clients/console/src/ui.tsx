/** Small pieces every screen uses: labelled fields with their errors, states, badges. */
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";

import { ApiError, type ApprovalState } from "./api.ts";

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
export function ErrorNote(props: { error: unknown; onRetry?: () => void }) {
  const error = props.error;
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
