/**
 * The gateway's API keys: what a program sends as `Authorization: Bearer sk-…`. Each key may be
 * held to some models, to limits and budgets, and to an expiry; the workspace's ceiling applies
 * to all of them together. A key is shown once, when it is created; the gateway keeps only its
 * hash (and a hint: its last characters).
 */
import { useEffect, useRef, useState } from "preact/hooks";

import { type ApiKey, type ApiKeyCreated, type Group, type LimitValues, type WorkspaceLimits, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { Confirm, DataTable, DialogFooter, ErrorNote, Field, FormDialog, Loading, Secret, TextField, useItems, useSubmit, when } from "./ui.tsx";

const LIMITS: [keyof LimitValues, string][] = [
  ["requests_per_minute", "Requests per minute"],
  ["tokens_per_minute", "Tokens per minute"],
  ["tokens_per_day", "Tokens per day"],
  ["tokens_per_month", "Tokens per month"],
];

type LimitsForm = Record<keyof LimitValues, string>;

function limitsForm(values: LimitValues | null | undefined): LimitsForm {
  const form = {} as LimitsForm;
  for (const [key] of LIMITS) form[key] = values?.[key] == null ? "" : String(values[key]);
  return form;
}

function limitsBody(form: LimitsForm): LimitValues {
  const body: LimitValues = {};
  for (const [key] of LIMITS) body[key] = form[key].trim() === "" ? null : Number(form[key]);
  return body;
}

/** Return limits in one line ("60 requests/min, 1,000,000 tokens/day"), or "no limits". */
function limitsText(values: LimitValues | null | undefined): string {
  const units: Record<keyof LimitValues, string> = {
    requests_per_minute: "requests/min",
    tokens_per_minute: "tokens/min",
    tokens_per_day: "tokens/day",
    tokens_per_month: "tokens/month",
  };
  const set = LIMITS.filter(([key]) => values?.[key] != null).map(([key]) => `${values![key]!.toLocaleString()} ${units[key]}`);
  return set.length ? set.join(", ") : "no limits";
}

/** The four limits as number fields (empty: no limit), each with the service's error below it. */
function LimitsFields(props: { form: LimitsForm; onChange: (form: LimitsForm) => void; errors: Record<string, string> }) {
  return (
    <div class="grid limits">
      {LIMITS.map(([key, label]) => (
        <Field key={key} label={label} error={props.errors[key] ?? props.errors.limits} hint="Empty: no limit.">
          {(a) => (
            <input
              {...a}
              type="number"
              min={1}
              step={1}
              value={props.form[key]}
              onInput={(e) => props.onChange({ ...props.form, [key]: e.currentTarget.value })}
            />
          )}
        </Field>
      ))}
    </div>
  );
}

/** When a key stops working (empty: never), in the person's local time. */
function ExpiresField(props: { value: string; onChange: (value: string) => void; error: string | undefined }) {
  return (
    <TextField
      label="Expires"
      type="datetime-local"
      value={props.value}
      onInput={(e) => props.onChange(e.currentTarget.value)}
      error={props.error}
      hint="Empty: never. Your local time."
    />
  );
}

/** Return an RFC 3339 time as a datetime-local input's value (local time, minutes). */
function localInput(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

const fromLocalInput = (value: string): string | null => (value ? new Date(value).toISOString() : null);

function keyStatus(key: ApiKey): string {
  if (key.revoked_at) return `revoked ${when(key.revoked_at)}`;
  if (key.expires_at && new Date(key.expires_at) <= new Date()) return "expired";
  return "active";
}

/** Return the gateway's models (its groups) of the workspace, the first 200. */
export function useGroups() {
  const { gateway } = useConsole();
  return useItems<Group>(
    () => gateway.GET("/v1/groups", { params: { query: { limit: 200 } } }),
    [gateway],
  );
}

/** Return the workspace's API keys, the first 200. */
export function useKeys() {
  const { gateway } = useConsole();
  return useItems<ApiKey>(() => gateway.GET("/v1/keys", { params: { query: { limit: 200 } } }), [gateway]);
}

export function KeysPanel() {
  const { gateway, canOperate } = useConsole();
  const keys = useKeys();
  const groups = useGroups();
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<ApiKey | null>(null);
  const [revokeError, setRevokeError] = useState<unknown>(null);

  async function revoke(key: ApiKey) {
    setRevokeError(null);
    try {
      await unwrap(gateway.DELETE("/v1/keys/{key_id}", { params: { path: { key_id: key.id } } }));
      keys.reload();
    } catch (error) {
      setRevokeError(error);
    }
  }

  return (
    <>
      <WorkspaceCeiling />
      <div class="page-head">
        <h2>API keys</h2>
        {canOperate && <button onClick={() => setCreating(true)}>Create an API key</button>}
      </div>
      <DataTable
        actionError={revokeError}
        what="API keys"
        list={keys}
        empty="No API keys yet: a program needs one to call the gateway."
        caption="API keys"
        columns={["Name", "Models", "Key", "Limits", "Expires", "Status", canOperate && "Actions"]}
        row={(k) => (
          <tr key={k.id}>
            <th scope="row" class="nowrap">
              {k.name}
            </th>
            <td>{k.groups === null ? <span class="muted">all</span> : k.groups.join(", ")}</td>
            <td class="nowrap">
              <code>{k.key_hint}</code>
            </td>
            <td>{limitsText(k.limits)}</td>
            <td>{k.expires_at ? when(k.expires_at) : "never"}</td>
            <td>{keyStatus(k)}</td>
            {canOperate && (
              <td class="actions-cell">
                {!k.revoked_at && (
                  <>
                    <button class="small" aria-label={`Edit ${k.name}`} onClick={() => setEditing(k)}>
                      Edit
                    </button>
                    <Confirm
                      text="Revoke"
                      label={`Revoke ${k.name}`}
                      question={`Revoke ${k.name}?`}
                      yes={`Yes, revoke ${k.name}`}
                      onConfirm={() => void revoke(k)}
                    />
                  </>
                )}
              </td>
            )}
          </tr>
        )}
      />
      {creating && (
        <CreateKeyDialog
          groups={groups.items ?? []}
          onClose={() => {
            setCreating(false);
            keys.reload();
          }}
        />
      )}
      {editing && (
        <EditKeyDialog
          apiKey={editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            keys.reload();
          }}
        />
      )}
    </>
  );
}

function CreateKeyDialog(props: { groups: Group[]; onClose: () => void }) {
  const { gateway } = useConsole();
  const dialog = useRef<HTMLDialogElement>(null);
  const { errors, failure, busy, onSubmit } = useSubmit(dialog);
  const [idempotencyKey] = useState(() => crypto.randomUUID());
  const [name, setName] = useState("");
  const [chosen, setChosen] = useState<string[]>([]);
  const [limits, setLimits] = useState(limitsForm(null));
  const [expires, setExpires] = useState("");
  const [created, setCreated] = useState<ApiKeyCreated | null>(null);

  if (created) {
    return (
      <FormDialog id="key-created-title" title="Your new API key" dialog={dialog} onClose={props.onClose}>
        <p role="alert" class="warning-note">
          <strong>Copy this key now: it is shown only this once.</strong> The gateway keeps only a hash of it; if it is
          lost, create a new key and revoke this one.
        </p>
        <Secret value={created.key ?? ""} label="The new API key" what="key" />
        <p class="muted">
          {created.name}: {created.groups === null ? "all models" : created.groups.join(", ")}; {limitsText(created.limits)}.
        </p>
        <footer>
          <button type="button" onClick={() => dialog.current?.close()}>
            Done, I have copied it
          </button>
        </footer>
      </FormDialog>
    );
  }

  return (
    <FormDialog id="create-key-title" title="Create an API key" dialog={dialog} onClose={props.onClose}>
      <form
        onSubmit={onSubmit(async () => {
          const { data } = await unwrap(
            gateway.POST("/v1/keys", {
              body: {
                name,
                groups: chosen.length ? chosen : null,
                limits: limitsBody(limits),
                expires_at: fromLocalInput(expires),
              },
              params: { header: { "Idempotency-Key": idempotencyKey } },
            }),
          );
          setCreated(data);
        })}
      >
        <Field label="Name" required error={errors.name} hint="Who uses it, e.g. support-chatbot.">
          {(a) => <input {...a} value={name} maxLength={200} onInput={(e) => setName(e.currentTarget.value)} />}
        </Field>
        <fieldset>
          <legend>Models it may use</legend>
          {props.groups.length === 0 ? (
            <p class="muted">No models yet: the key may use every model made later.</p>
          ) : (
            props.groups.map((g) => (
              <label key={g.id}>
                <input
                  type="checkbox"
                  checked={chosen.includes(g.name)}
                  onChange={(e) => setChosen(e.currentTarget.checked ? [...chosen, g.name] : chosen.filter((x) => x !== g.name))}
                />
                {g.name}
              </label>
            ))
          )}
          <small>None chosen: every model of the workspace.</small>
          {errors.groups && <small class="field-error">{errors.groups}</small>}
        </fieldset>
        <LimitsFields form={limits} onChange={setLimits} errors={errors} />
        <ExpiresField value={expires} onChange={setExpires} error={errors.expires_at} />
        <DialogFooter dialog={dialog} failure={failure} busy={busy} submit="Create the API key" />
      </form>
    </FormDialog>
  );
}

function EditKeyDialog(props: { apiKey: ApiKey; onClose: () => void; onSaved: () => void }) {
  const { gateway } = useConsole();
  const dialog = useRef<HTMLDialogElement>(null);
  const { errors, failure, busy, onSubmit } = useSubmit(dialog);
  const [limits, setLimits] = useState(limitsForm(props.apiKey.limits));
  const [expires, setExpires] = useState(localInput(props.apiKey.expires_at));
  return (
    <FormDialog id="edit-key-title" title={`Limits and expiry of ${props.apiKey.name}`} dialog={dialog} onClose={props.onClose}>
      <form
        onSubmit={onSubmit(async () => {
          // The ETag of the key as this person saw it: a change made since is not overwritten (412).
          await unwrap(
            gateway.PATCH("/v1/keys/{key_id}", {
              params: { path: { key_id: props.apiKey.id }, header: { "If-Match": props.apiKey.etag } },
              body: { limits: limitsBody(limits), expires_at: fromLocalInput(expires) },
            }),
          );
          props.onSaved();
        })}
      >
        <LimitsFields form={limits} onChange={setLimits} errors={errors} />
        <ExpiresField value={expires} onChange={setExpires} error={errors.expires_at} />
        <DialogFooter dialog={dialog} failure={failure} busy={busy} submit="Save the limits" />
      </form>
    </FormDialog>
  );
}

/** The workspace's ceiling: what all its keys together may use; admins change it. */
function WorkspaceCeiling() {
  const { gateway, canAdmin } = useConsole();
  const [ceiling, setCeiling] = useState<WorkspaceLimits | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState(limitsForm(null));
  const [saved, setSaved] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);
  const { errors, failure, busy, onSubmit } = useSubmit(formRef);
  useEffect(() => {
    setError(null);
    unwrap(gateway.GET("/v1/limits")).then(
      ({ data, response }) => setCeiling({ ...data, etag: response.headers.get("ETag") ?? data.etag }),
      setError,
    );
  }, [gateway, attempt]);
  if (error) return <ErrorNote error={error} onRetry={() => setAttempt((n) => n + 1)} />;
  if (!ceiling) return <Loading what="the workspace's limits" />;
  return (
    <article aria-labelledby="ceiling-title">
      <div class="page-head">
        <h2 id="ceiling-title">Workspace limits</h2>
        {canAdmin && !editing && (
          <button class="secondary" onClick={() => (setForm(limitsForm(ceiling)), setEditing(true), setSaved(false))}>
            Change the workspace limits
          </button>
        )}
      </div>
      <p class="muted">
        What all API keys of this workspace together may use, on top of each key's own limits.
        {ceiling.updated_by && ` Last changed by ${ceiling.updated_by}, ${when(ceiling.updated_at)}.`}
      </p>
      {!editing ? (
        <p aria-label="Workspace limits now">{limitsText(ceiling)}</p>
      ) : (
        <form
          ref={formRef}
          onSubmit={onSubmit(async () => {
            const { data, response } = await unwrap(
              gateway.PATCH("/v1/limits", { params: { header: { "If-Match": ceiling.etag } }, body: limitsBody(form) }),
            );
            setCeiling({ ...data, etag: response.headers.get("ETag") ?? data.etag });
            setEditing(false);
            setSaved(true);
          })}
        >
          <LimitsFields form={form} onChange={setForm} errors={errors} />
          {failure ? <ErrorNote error={failure} /> : null}
          <button type="submit" aria-busy={busy} disabled={busy}>
            Save the workspace limits
          </button>{" "}
          <button type="button" class="secondary" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </form>
      )}
      {saved && <p role="status">Workspace limits saved.</p>}
    </article>
  );
}
