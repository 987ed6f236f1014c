import { useEffect, useRef, useState } from "preact/hooks";

import {
  ApiError,
  type Approval,
  type HistoryEntry,
  type Model,
  type SystemLink,
  systemsNamed,
  unwrap,
} from "./api.ts";
import { useConsole } from "./context.ts";
import { parseTags } from "./create-model.tsx";
import { learningTypeLabel, useLearningTypes } from "./learning-types.ts";
import { Markdown, MarkdownEditor } from "./markdown.tsx";
import { go } from "./router.ts";
import { ApprovalBadge, ErrorNote, Field, Loading, RowLink, Table, useSubmit, when } from "./ui.tsx";
import { DeployPanel } from "./deploy.tsx";
import { AccessPanel, UsagePanel } from "./model-access.tsx";
import { VersionsPanel } from "./versions.tsx";

const TABS = [
  ["overview", "Overview"],
  ["versions", "Version"],
  ["deploy", "Deploy"],
  ["access", "Access"],
  ["usage", "Usage"],
  ["approval", "Approval"],
  ["history", "History"],
  ["settings", "Settings"],
] as const;

/** A model's page: Overview, Version, Deploy, Approval, History and Settings. */
export function ModelPage(props: { id: string; tab: string }) {
  const { registry } = useConsole();
  const [model, setModel] = useState<Model | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    setError(null);
    unwrap(registry.GET("/v1/models/{model_id}", { params: { path: { model_id: props.id } } })).then(
      ({ data, response }) => setModel({ ...data, etag: response.headers.get("ETag") ?? data.etag }),
      setError,
    );
  }, [props.id, registry, attempt]);

  if (error) {
    return (
      <section>
        <p>
          <a href="#/models">← AI models</a>
        </p>
        {error instanceof ApiError && error.status === 404 ? (
          <p role="alert">This AI model does not exist in this workspace (or it was deleted).</p>
        ) : (
          <ErrorNote error={error} onRetry={() => setAttempt(attempt + 1)} />
        )}
      </section>
    );
  }
  if (!model || model.id !== props.id) return <Loading what="the AI model" />;
  const reload = () => setAttempt(attempt + 1);
  return (
    <section aria-labelledby="model-title">
      <p>
        <a href="#/models">← AI models</a>
      </p>
      <div class="page-head">
        <h1 id="model-title">{model.name}</h1>
        <ApprovalBadge state={model.approval} />
        {model.archived && <span class="badge">Archived</span>}
      </div>
      <nav aria-label="AI model sections" class="tabs">
        <ul>
          {TABS.map(([key, label]) => (
            <li key={key}>
              <a href={`#/models/${model.id}/${key}`} aria-current={props.tab === key ? "page" : undefined}>
                {label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      {props.tab === "overview" && <Overview model={model} />}
      {props.tab === "versions" && <VersionsPanel model={model} />}
      {props.tab === "deploy" && <DeployPanel model={model} />}
      {props.tab === "access" && <AccessPanel model={model} />}
      {props.tab === "usage" && <UsagePanel model={model} />}
      {props.tab === "approval" && <ApprovalPanel model={model} onChanged={reload} />}
      {props.tab === "history" && <History model={model} />}
      {props.tab === "settings" && <Settings model={model} onChanged={setModel} />}
    </section>
  );
}

function Overview(props: { model: Model }) {
  const { registry } = useConsole();
  const types = useLearningTypes();
  const { model } = props;
  const [systems, setSystems] = useState<SystemLink[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    unwrap(registry.GET("/v1/models/{model_id}/systems", { params: { path: { model_id: model.id } } })).then(
      ({ data }) => setSystems(data),
      setError,
    );
  }, [model.id, registry]);
  const definition = types?.find((t) => t.id === model.learning_type)?.definition;
  const properties = Object.entries(model.properties ?? {});
  return (
    <>
      <div class="grid overview">
        <article>
          <h2>Description</h2>
          {model.description.trim() ? <Markdown text={model.description} /> : <p class="muted">No description yet.</p>}
        </article>
        <article>
          <h2>About</h2>
          <dl>
            <dt>Learning type</dt>
            <dd>
              {learningTypeLabel(types, model.learning_type)}
              {definition && <small class="definition">{definition}</small>}
            </dd>
            <dt>Functionality</dt>
            <dd>{model.functionality || "—"}</dd>
            <dt>Foundations</dt>
            <dd>{model.foundations || "—"}</dd>
            <dt>Provider</dt>
            <dd>{model.provider || "—"}</dd>
            <dt>Tags</dt>
            <dd>{model.tags.length ? model.tags.join(", ") : "—"}</dd>
            {properties.map(([name, property]) => (
              <>
                <dt key={`${name}-dt`}>{name}</dt>
                <dd key={`${name}-dd`}>{String((property as { value: unknown }).value)}</dd>
              </>
            ))}
            <dt>Created</dt>
            <dd>
              {when(model.created_at)} by {model.created_by}
            </dd>
            <dt>Last changed</dt>
            <dd>
              {when(model.updated_at)} by {model.updated_by}
            </dd>
          </dl>
        </article>
      </div>
      <article aria-labelledby="systems-title">
        <h2 id="systems-title">AI systems using this model</h2>
        {error ? (
          <ErrorNote error={error} />
        ) : systems === null ? (
          <Loading what="the AI systems" />
        ) : systems.length === 0 ? (
          <p class="muted">No AI system uses this model yet. Link it from an AI system's AI Models section.</p>
        ) : (
          <Table class="" columns={["AI system", "Risk level", "Status", "Description of use"]}>
            {systems.map((s) => (
              <tr key={s.system_id}>
                <RowLink href={`#/systems/${s.system_id}`}>{s.system_name}</RowLink>
                <td>{s.risk_level}</td>
                <td>{s.status}</td>
                <td>{s.description_of_use}</td>
              </tr>
            ))}
          </Table>
        )}
      </article>
    </>
  );
}

type Act = "request" | "approved" | "restricted" | "blocked" | "retire";
const ACT_LABEL: Record<Act, string> = {
  request: "Request review",
  approved: "Approve",
  restricted: "Restrict",
  blocked: "Block",
  retire: "Retire",
};

function ApprovalPanel(props: { model: Model; onChanged: () => void }) {
  const { registry, canEdit, canDecide, session } = useConsole();
  const { model } = props;
  const [approval, setApproval] = useState<Approval | null>(null);
  const [act, setAct] = useState<Act | null>(null);
  const [comment, setComment] = useState("");
  const [conditions, setConditions] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    unwrap(registry.GET("/v1/models/{model_id}/approval", { params: { path: { model_id: model.id } } })).then(
      ({ data }) => setApproval(data),
      setFailure,
    );
  }, [model.id, model.approval, registry]);
  if (!approval) return failure ? <ErrorNote error={failure} /> : <Loading what="the approval" />;
  const state = approval.state;
  const ownRequest = approval.requested_by === session.sub;
  const offered: Act[] = [];
  if (canEdit && state !== "in_review" && state !== "retired") offered.push("request");
  if (canDecide && state === "in_review" && !ownRequest) offered.push("approved", "restricted");
  if (canDecide && state !== "blocked" && state !== "retired") offered.push("blocked");
  if (canDecide && state !== "retired") offered.push("retire");
  const path = { params: { path: { model_id: model.id } } };

  async function submit(e: Event) {
    e.preventDefault();
    if (!act) return;
    setBusy(true);
    setErrors({});
    setFailure(null);
    try {
      const call =
        act === "request"
          ? registry.POST("/v1/models/{model_id}/approval/request", { ...path, body: { comment } })
          : act === "retire"
            ? registry.POST("/v1/models/{model_id}/approval/retire", { ...path, body: { comment } })
            : registry.POST("/v1/models/{model_id}/approval/decision", {
                ...path,
                body: {
                  decision: act,
                  comment,
                  conditions: act === "restricted" ? { text: conditions } : null,
                },
              });
      const { data } = await unwrap(call);
      setApproval(data);
      setAct(null);
      setComment("");
      props.onChanged();
    } catch (error) {
      const fields = error instanceof ApiError ? error.fieldErrors() : {};
      setErrors(fields);
      if (Object.keys(fields).length === 0) setFailure(error);
    } finally {
      setBusy(false);
    }
  }

  return (
    <article aria-labelledby="approval-title">
      <h2 id="approval-title">Approval</h2>
      <dl class="approval">
        <dt>State</dt>
        <dd>
          <ApprovalBadge state={state} />
        </dd>
        <Who term="Review requested by" approval={approval} step="request" />
        <Who term="Decided by" approval={approval} step="decision" />
        {approval.conditions?.text && (
          <>
            <dt>Conditions</dt>
            <dd>{approval.conditions.text}</dd>
          </>
        )}
      </dl>
      {state === "in_review" && ownRequest && canDecide && (
        <p class="muted">You asked for this review: someone else decides it (four-eyes rule).</p>
      )}
      {offered.length > 0 && (
        <fieldset class="actions">
          <legend class="visually-hidden">Approval actions</legend>
          {offered.map((a) => (
            <button
              key={a}
              class={a === "blocked" || a === "retire" ? "secondary outline" : act === a ? "" : "outline"}
              aria-pressed={act === a}
              onClick={() => {
                setAct(a);
                setFailure(null);
              }}
            >
              {ACT_LABEL[a]}
            </button>
          ))}
        </fieldset>
      )}
      {act && (
        <form onSubmit={submit} aria-label={ACT_LABEL[act]}>
          <Field label="Comment" required error={errors.comment} hint="Recorded in the history with your name.">
            {(a) => <textarea {...a} rows={3} value={comment} onInput={(e) => setComment(e.currentTarget.value)} />}
          </Field>
          {act === "restricted" && (
            <Field label="Conditions" required error={errors.conditions}>
              {(a) => <textarea {...a} rows={2} value={conditions} onInput={(e) => setConditions(e.currentTarget.value)} />}
            </Field>
          )}
          {failure !== null && <ErrorNote error={failure} />}
          <button type="submit" aria-busy={busy} disabled={busy}>
            {ACT_LABEL[act]}: confirm
          </button>
        </form>
      )}
      {act === null && failure !== null && <ErrorNote error={failure} />}
    </article>
  );
}

/** Who asked or decided, when, and what they said; a dash when nobody has. */
/** Who asked for the review or decided it (`step`), when, and what they said. */
function Who(props: { term: string; approval: Approval; step: "request" | "decision" }) {
  const a = props.approval;
  const [who, at, comment] =
    props.step === "request" ? [a.requested_by, a.requested_at, a.request_comment] : [a.decided_by, a.decided_at, a.decision_comment];
  return (
    <>
      <dt>{props.term}</dt>
      <dd>
        {who ? (
          <>
            {who} <small>{when(at)}</small>
            {comment && <q>{comment}</q>}
          </>
        ) : (
          "—"
        )}
      </dd>
    </>
  );
}

function show(value: unknown): string {
  if (value === null || value === undefined || value === "") return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function History(props: { model: Model }) {
  const { registry } = useConsole();
  const [entries, setEntries] = useState<HistoryEntry[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  async function load(cursor: string | null) {
    try {
      const { data } = await unwrap(
        registry.GET("/v1/models/{model_id}/history", {
          params: { path: { model_id: props.model.id }, query: { sort: "-at", limit: 50, cursor: cursor ?? undefined } },
        }),
      );
      setEntries((shown) => (cursor && shown ? [...shown, ...data.items] : data.items));
      setNext(data.next_cursor ?? null);
    } catch (e) {
      setError(e);
    }
  }
  useEffect(() => void load(null), [props.model.id, registry]);
  if (error) return <ErrorNote error={error} />;
  if (!entries) return <Loading what="the history" />;
  return (
    <article aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      <Table class="" columns={["When", "Who", "What", "Field", "Before", "After"]}>
        {entries.flatMap((entry) => {
          const changes = Object.entries(entry.changes ?? {}) as [string, { old?: unknown; new?: unknown }][];
          const rows = changes.length ? changes : [["", {}] as [string, { old?: unknown; new?: unknown }]];
          return rows.map(([field, change], i) => (
            <tr key={`${entry.id}-${field}`}>
              <td>{i === 0 ? when(entry.at) : ""}</td>
              <td>{i === 0 ? entry.actor : ""}</td>
              <td>{i === 0 ? entry.action : ""}</td>
              <td>{field}</td>
              <td>{field ? show(change.old) : ""}</td>
              <td>{field ? show(change.new) : ""}</td>
            </tr>
          ));
        })}
      </Table>
      {next && (
        <button class="secondary" onClick={() => load(next)}>
          Load older changes
        </button>
      )}
    </article>
  );
}

function Settings(props: { model: Model; onChanged: (model: Model) => void }) {
  const { registry, canEdit, canAdmin } = useConsole();
  const { model } = props;
  const [name, setName] = useState(model.name);
  const [description, setDescription] = useState(model.description);
  const [tags, setTags] = useState(model.tags.join(", "));
  const form = useRef<HTMLFormElement>(null);
  const { errors, failure, busy, submit, onSubmit } = useSubmit(form);
  const [saved, setSaved] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [deleteError, setDeleteError] = useState<ApiError | null>(null);
  const path = { model_id: model.id };

  const save = onSubmit(async () => {
    setSaved(false);
    const { data, response } = await unwrap(
      registry.PATCH("/v1/models/{model_id}", {
        params: { path, header: { "If-Match": model.etag } },
        body: { name, description, tags: parseTags(tags) },
      }),
    );
    props.onChanged({ ...data, etag: response.headers.get("ETag") ?? data.etag });
    setSaved(true);
  });

  // Its failure is said where a save's is (the form above).
  const archive = () =>
    submit(async () => {
      const call = model.archived
        ? registry.POST("/v1/models/{model_id}/unarchive", { params: { path } })
        : registry.POST("/v1/models/{model_id}/archive", { params: { path } });
      const { data, response } = await unwrap(call);
      props.onChanged({ ...data, etag: response.headers.get("ETag") ?? data.etag });
    });

  async function remove() {
    setDeleteError(null);
    try {
      await unwrap(registry.DELETE("/v1/models/{model_id}", { params: { path } }));
      go("/models");
    } catch (error) {
      setDeleteError(error instanceof ApiError ? error : new ApiError(0, null));
    }
  }

  if (!canEdit) {
    return <p class="muted">Viewers cannot change an AI model. Ask an editor of this workspace.</p>;
  }
  const usedBy = deleteError ? systemsNamed(deleteError) : [];
  return (
    <>
      <article aria-labelledby="settings-title">
        <h2 id="settings-title">Settings</h2>
        <form ref={form} onSubmit={save}>
          <Field label="Name" required error={errors.name}>
            {(a) => <input {...a} value={name} onInput={(e) => setName(e.currentTarget.value)} />}
          </Field>
          <MarkdownEditor label="Description" value={description} onInput={setDescription} error={errors.description} />
          <Field label="Tags" error={errors.tags} hint="Separated by commas.">
            {(a) => <input {...a} value={tags} onInput={(e) => setTags(e.currentTarget.value)} />}
          </Field>
          {failure !== null && <ErrorNote error={failure} />}
          {saved && <p role="status">Saved.</p>}
          <button type="submit" aria-busy={busy} disabled={busy}>
            Save changes
          </button>
        </form>
      </article>
      <article aria-labelledby="archive-title">
        <h2 id="archive-title">{model.archived ? "Restore" : "Archive"}</h2>
        <p>
          {model.archived
            ? "Archived models are hidden from the list; restoring brings it back."
            : "Archiving hides the model from the list and keeps its history; it can be restored."}
        </p>
        <button class="secondary" onClick={archive}>
          {model.archived ? "Restore this AI model" : "Archive this AI model"}
        </button>
      </article>
      {canAdmin && (
        <article aria-labelledby="delete-title" class="danger">
          <h2 id="delete-title">Delete</h2>
          <p>Deleting removes the model and its history for good. A model an AI system uses cannot be deleted.</p>
          {!confirmDelete ? (
            <button class="secondary outline" onClick={() => setConfirmDelete(true)}>
              Delete this AI model
            </button>
          ) : (
            <div class="confirm">
              <p>
                Delete <strong>{model.name}</strong> for good?
              </p>
              <button class="danger-button" onClick={remove}>
                Yes, delete {model.name}
              </button>{" "}
              <button class="secondary" onClick={() => setConfirmDelete(false)}>
                Keep it
              </button>
            </div>
          )}
          {deleteError &&
            (deleteError.status === 409 && usedBy.length ? (
              <div role="alert" class="error">
                <p>
                  <strong>This AI model cannot be deleted:</strong> it is used by these AI systems. Unlink it
                  from each (or archive the model instead).
                </p>
                <ul aria-label="AI systems using this model">
                  {usedBy.map((s) => (
                    <li key={s.id}>
                      <a href={`#/systems/${s.id}`}>{s.name}</a>
                    </li>
                  ))}
                </ul>
              </div>
            ) : (
              <ErrorNote error={deleteError} />
            ))}
        </article>
      )}
    </>
  );
}
