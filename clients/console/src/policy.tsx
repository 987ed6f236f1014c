/**
 * Gateway: the workspace policy. The gate that decides whether unapproved AI models may be
 * deployed and served (the registry's `/v1/policy`): every member reads it; admins change it,
 * with a comment; every change is listed with who and when.
 */
import { useEffect, useRef, useState } from "preact/hooks";

import { type HistoryEntry, type Policy, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { DataTable, ErrorNote, Field, Loading, useItems, useSubmit, when } from "./ui.tsx";

type Gate = Policy["gate"];
const GATES: [Gate, string, string][] = [
  ["enforce", "Enforce", "Only approved (or restricted) AI models are deployed and served; anything else is refused."],
  ["warn", "Warn", "Unapproved AI models are deployed and served, each time with a warning."],
  ["off", "Off", "The approval state is not looked at."],
];

export function PolicyPanel() {
  const { registry, canAdmin } = useConsole();
  const [policy, setPolicy] = useState<Policy | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  const [gate, setGate] = useState<Gate>("enforce");
  const [comment, setComment] = useState("");
  const [saved, setSaved] = useState<string | null>(null);
  const form = useRef<HTMLFormElement>(null);
  const { errors, failure, busy, onSubmit } = useSubmit(form);
  const history = useItems<HistoryEntry>(
    () => registry.GET("/v1/policy/history", { params: { query: { sort: "-at", limit: 50 } } }),
    [registry, attempt],
  );
  useEffect(() => {
    setError(null);
    unwrap(registry.GET("/v1/policy")).then(({ data }) => (setPolicy(data), setGate(data.gate)), setError);
  }, [registry, attempt]);

  if (error) return <ErrorNote error={error} onRetry={() => setAttempt((n) => n + 1)} />;
  if (!policy) return <Loading what="the workspace policy" />;
  const label = (g: Gate) => GATES.find(([value]) => value === g)?.[1] ?? g;
  return (
    <>
      <article aria-labelledby="policy-title">
        <h2 id="policy-title">Workspace policy</h2>
        <p role="status">
          The gate is <strong>{label(policy.gate)}</strong>
          {policy.is_default ? " (the default: nobody has set it in this workspace)" : ` since ${when(policy.updated_at)}, set by ${policy.updated_by}`}
          .{policy.comment && <> “{policy.comment}”</>}
        </p>
        {canAdmin ? (
          <form
            ref={form}
            onSubmit={onSubmit(async () => {
              setSaved(null);
              const { data } = await unwrap(registry.PUT("/v1/policy", { body: { gate, comment: comment.trim() } }));
              setPolicy(data);
              setComment("");
              setSaved(`The gate is now ${label(data.gate)}; the deployer and the gateway follow within seconds.`);
              setAttempt((n) => n + 1);
            })}
          >
            <fieldset aria-describedby={errors.gate ? "gate-error" : undefined}>
              <legend>Gate</legend>
              {GATES.map(([value, name, meaning]) => (
                <label key={value} class="choice">
                  <input type="radio" name="gate" value={value} checked={gate === value} onChange={() => setGate(value)} />
                  <span>
                    <strong>{name}</strong>
                    <small class="definition">{meaning}</small>
                  </span>
                </label>
              ))}
              {errors.gate && (
                <small id="gate-error" class="field-error">
                  {errors.gate}
                </small>
              )}
            </fieldset>
            <Field label="Why" error={errors.comment} hint="Kept in the history, e.g. the decision it follows.">
              {(a) => <input {...a} value={comment} onInput={(e) => setComment(e.currentTarget.value)} />}
            </Field>
            {failure ? <ErrorNote error={failure} /> : null}
            {saved && <p role="status">{saved}</p>}
            <button type="submit" aria-busy={busy} disabled={busy || gate === policy.gate}>
              Save the policy
            </button>
          </form>
        ) : (
          <p class="muted">Only admins change the policy.</p>
        )}
      </article>
      <article aria-labelledby="policy-history-title">
        <h2 id="policy-history-title">Changes</h2>
        <DataTable
          what="the changes"
          list={history}
          empty="Never changed in this workspace."
          columns={["When", "Who", "Gate", "Why"]}
          row={(entry) => {
            const changes = (entry.changes ?? {}) as Record<string, { old?: unknown; new?: unknown }>;
            const was = changes.gate?.old;
            return (
              <tr key={entry.id}>
                <td>{when(entry.at)}</td>
                <td>{entry.actor}</td>
                <td>
                  {was ? `${String(was)} → ` : ""}
                  {String(changes.gate?.new ?? "")}
                </td>
                <td>{String(changes.comment?.new ?? "")}</td>
              </tr>
            );
          }}
        />
      </article>
    </>
  );
}
