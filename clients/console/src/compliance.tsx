/**
 * An AI system's compliance, on its page: the AI Act obligations its risk level and role bring
 * (each one's status, owner, note and proving evidence, changed with If-Match), the evidence
 * items that prove them (a link and/or a file, downloaded and deleted here), and the system's
 * register as a PDF. Viewers see it all and change nothing.
 */
import { useRef, useState } from "preact/hooks";

import { type Evidence, type EvidenceType, type Obligation, type ObligationStatus, type System, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { bytes } from "./versions.tsx";
import {
  Confirm,
  DataTable,
  DialogFooter,
  DownloadButton,
  Field,
  FormDialog,
  Options,
  TextField,
  useAction,
  useItems,
  useList,
  useSubmit,
  when,
} from "./ui.tsx";

const STATUS_LABEL: Record<ObligationStatus, string> = {
  open: "Open",
  in_progress: "In progress",
  done: "Done",
  not_applicable: "Not applicable",
};

const EVIDENCE_TYPE: Record<EvidenceType, string> = {
  model_card: "Model card",
  dpia: "Data protection impact assessment (DPIA)",
  fria: "Fundamental rights impact assessment (FRIA)",
  bias_report: "Bias report",
  technical_documentation: "Technical documentation",
  conformity_declaration: "Declaration of conformity",
  test_report: "Test report",
  instructions_for_use: "Instructions for use",
  other: "Other",
};

type EvidenceList = ReturnType<typeof useItems<Evidence>>;

/** The compliance sections of an AI system's page. */
export function SystemCompliance(props: { system: System }) {
  const { registry } = useConsole();
  const system = props.system;
  const evidence = useItems<Evidence>(
    () => registry.GET("/v1/evidence", { params: { query: { system_id: system.id, limit: 200, sort: "-created_at" } } }),
    [registry, system.id],
  );
  return (
    <>
      <div class="actions">
        <DownloadButton
          class="secondary"
          text="Download the register (PDF)"
          name={`${system.name}-ai-act-register.pdf`}
          call={() => registry.GET("/v1/systems/{system_id}/register.pdf", { params: { path: { system_id: system.id } }, parseAs: "blob" })}
        />
      </div>
      <Obligations system={system} evidence={evidence} />
      <EvidencePanel system={system} evidence={evidence} />
    </>
  );
}

function Obligations(props: { system: System; evidence: EvidenceList }) {
  const { registry, canEdit } = useConsole();
  const system = props.system;
  const obligations = useList<Obligation>(
    async () => (await unwrap(registry.GET("/v1/systems/{system_id}/obligations", { params: { path: { system_id: system.id } } }))).data,
    [registry, system.id],
  );
  const [editing, setEditing] = useState<Obligation | null>(null);
  const titles = new Map((props.evidence.items ?? []).map((e) => [e.id, e.title]));
  return (
    <article aria-labelledby="obligations-title">
      <h2 id="obligations-title">Obligations</h2>
      <p class="muted">
        What the AI Act asks of a {system.risk_level}-risk system whose organisation is its {system.ai_act_role}. Required
        ones must be done before a high-risk system is in use.
      </p>
      <DataTable
        what="the obligations"
        list={obligations}
        empty="The AI Act puts no obligations on a system of this risk level and role."
        labelledBy="obligations-title"
        columns={["Obligation", "Status", "Owner", "Evidence", "Note", "Updated", canEdit && "Actions"]}
        row={(o) => (
          <tr key={o.code}>
            <th scope="row">
              {o.title} <small class="muted block">{o.article}{o.required ? ", required" : ""}</small>
            </th>
            <td>
              <span class={`badge obligation-${o.status}`}>{STATUS_LABEL[o.status]}</span>
            </td>
            <td>{o.owner}</td>
            <td>{o.evidence_id ? (titles.get(o.evidence_id) ?? "an evidence item") : ""}</td>
            <td>{o.note}</td>
            <td>{o.updated_at ? `${when(o.updated_at)} by ${o.updated_by}` : ""}</td>
            {canEdit && (
              <td class="actions-cell">
                <button class="small" aria-label={`Change ${o.article}: ${o.title}`} onClick={() => setEditing(o)}>
                  Change
                </button>
              </td>
            )}
          </tr>
        )}
      />
      {editing && (
        <ObligationDialog
          system={system}
          obligation={editing}
          evidence={props.evidence.items ?? []}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            obligations.reload();
          }}
        />
      )}
    </article>
  );
}

function ObligationDialog(props: { system: System; obligation: Obligation; evidence: Evidence[]; onClose: () => void; onSaved: () => void }) {
  const { registry } = useConsole();
  const o = props.obligation;
  const dialog = useRef<HTMLDialogElement>(null);
  const { errors, failure, busy, onSubmit } = useSubmit(dialog);
  const [status, setStatus] = useState<ObligationStatus>(o.status);
  const [owner, setOwner] = useState(o.owner);
  const [note, setNote] = useState(o.note);
  const [evidenceId, setEvidenceId] = useState(o.evidence_id ?? "");
  // A required obligation cannot be "not applicable" (the registry says 409): not offered.
  const statuses = Object.entries(STATUS_LABEL).filter(([value]) => !(o.required && value === "not_applicable"));
  return (
    <FormDialog id="obligation-title" title={`${o.article}: ${o.title}`} dialog={dialog} onClose={props.onClose}>
      <form
        onSubmit={onSubmit(async () => {
          // The obligation as this person saw it: a change made since is a 412, not overwritten.
          await unwrap(
            registry.PATCH("/v1/systems/{system_id}/obligations/{code}", {
              params: { path: { system_id: props.system.id, code: o.code }, header: { "If-Match": o.etag } },
              body: { status, owner, note, ...(evidenceId ? { evidence_id: evidenceId } : {}) },
            }),
          );
          props.onSaved();
        })}
      >
        <Field label="Status" required error={errors.status}>
          {(a) => (
            <select {...a} value={status} onChange={(e) => setStatus(e.currentTarget.value as ObligationStatus)}>
              <Options choices={statuses} />
            </select>
          )}
        </Field>
        <TextField label="Owner" value={owner} onInput={(e) => setOwner(e.currentTarget.value)} error={errors.owner} hint="Who sees to it." />
        <Field label="Evidence" error={errors.evidence_id} hint="The evidence item that proves it (add it under Evidence).">
          {(a) => (
            <select {...a} value={evidenceId} onChange={(e) => setEvidenceId(e.currentTarget.value)}>
              <Options choices={[["", "None"], ...props.evidence.map((e) => [e.id, e.title] as const)]} />
            </select>
          )}
        </Field>
        <TextField label="Note" rows={3} value={note} onInput={(e) => setNote(e.currentTarget.value)} error={errors.note} />
        <DialogFooter dialog={dialog} failure={failure} busy={busy} submit="Save the obligation" />
      </form>
    </FormDialog>
  );
}

function EvidencePanel(props: { system: System; evidence: EvidenceList }) {
  const { registry, canEdit } = useConsole();
  const action = useAction();
  const [adding, setAdding] = useState(false);
  const remove = (item: Evidence) =>
    action.run(item.id, async () => {
      await unwrap(registry.DELETE("/v1/evidence/{evidence_id}", { params: { path: { evidence_id: item.id } } }));
      props.evidence.reload();
    });
  return (
    <article aria-labelledby="evidence-title">
      <div class="page-head">
        <h2 id="evidence-title">Evidence</h2>
        {canEdit && <button onClick={() => setAdding(true)}>Add evidence</button>}
      </div>
      <DataTable
        actionError={action.error}
        what="the evidence"
        list={props.evidence}
        empty="No evidence for this AI system yet."
        labelledBy="evidence-title"
        columns={["Title", "Type", "Owner", "Expires", "File", canEdit && "Actions"]}
        row={(e) => (
          <tr key={e.id}>
            <th scope="row">
              {e.url ? (
                <a href={e.url} target="_blank" rel="noopener noreferrer">
                  {e.title}
                </a>
              ) : (
                e.title
              )}
            </th>
            <td>{EVIDENCE_TYPE[e.type]}</td>
            <td>{e.owner}</td>
            <td>
              {e.expires_on ?? "never"}
              {e.expired && <span class="badge expired"> expired</span>}
            </td>
            <td>
              {e.has_file && (
                <DownloadButton
                  class="secondary outline small"
                  text={e.file_name ?? "Download"}
                  label={`Download ${e.file_name ?? e.title}`}
                  name={e.file_name ?? "evidence"}
                  call={() => registry.GET("/v1/evidence/{evidence_id}/file", { params: { path: { evidence_id: e.id } }, parseAs: "blob" })}
                />
              )}
              {e.file_size !== null && <small class="muted block">{bytes(e.file_size)}</small>}
            </td>
            {canEdit && (
              <td class="actions-cell">
                <Confirm
                  text="Delete"
                  label={`Delete ${e.title}`}
                  question={`Delete the evidence ${e.title}?`}
                  yes={`Yes, delete ${e.title}`}
                  disabled={action.busy !== null}
                  onConfirm={() => remove(e)}
                />
              </td>
            )}
          </tr>
        )}
      />
      {adding && <AddEvidenceDialog system={props.system} onClose={() => (setAdding(false), props.evidence.reload())} />}
    </article>
  );
}

/** Add an evidence item (and its file); closing the dialog shows the list as it now is. */
function AddEvidenceDialog(props: { system: System; onClose: () => void }) {
  const { registry } = useConsole();
  const dialog = useRef<HTMLDialogElement>(null);
  const { errors, failure, busy, onSubmit } = useSubmit(dialog);
  const [idempotencyKey] = useState(() => crypto.randomUUID());
  const [form, setForm] = useState({ type: "fria", title: "", url: "", owner: "", expires_on: "" });
  const [file, setFile] = useState<File | null>(null);
  const set = (key: keyof typeof form) => (e: { currentTarget: { value: string } }) => setForm({ ...form, [key]: e.currentTarget.value });
  return (
    <FormDialog id="add-evidence-title" title="Add evidence" dialog={dialog} onClose={props.onClose}>
      <form
        onSubmit={onSubmit(async () => {
          const { data } = await unwrap(
            registry.POST("/v1/evidence", {
              params: { header: { "Idempotency-Key": idempotencyKey } },
              body: {
                type: form.type as EvidenceType,
                title: form.title,
                url: form.url.trim() || null,
                owner: form.owner,
                expires_on: form.expires_on || null,
                system_id: props.system.id,
              },
            }),
          );
          if (file) {
            try {
              await unwrap(
                registry.PUT("/v1/evidence/{evidence_id}/file", {
                  params: {
                    path: { evidence_id: data.id },
                    query: { filename: file.name },
                    header: { "content-type": file.type || "application/octet-stream" },
                  },
                  // The file itself is the body, sent as it is.
                  body: file as unknown as string,
                  bodySerializer: (body: unknown) => body,
                }),
              );
            } catch (error) {
              // No item without its file: the person tries again with another one.
              await unwrap(registry.DELETE("/v1/evidence/{evidence_id}", { params: { path: { evidence_id: data.id } } })).catch(() => null);
              throw error;
            }
          }
          dialog.current?.close();
        })}
      >
        <Field label="Type" required error={errors.type}>
          {(a) => (
            <select {...a} value={form.type} onChange={set("type")}>
              <Options choices={Object.entries(EVIDENCE_TYPE)} />
            </select>
          )}
        </Field>
        <TextField label="Title" required value={form.title} onInput={set("title")} error={errors.title} />
        <TextField label="Link" type="url" value={form.url} onInput={set("url")} error={errors.url} hint="Where the document lives, if it is kept elsewhere." />
        <Field label="File" error={errors.file ?? errors.filename} hint="The document itself (at most 10 MB).">
          {(a) => <input {...a} type="file" onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)} />}
        </Field>
        <div class="grid">
          <TextField label="Owner" value={form.owner} onInput={set("owner")} error={errors.owner} />
          <TextField label="Expires on" type="date" value={form.expires_on} onInput={set("expires_on")} error={errors.expires_on} hint="When it must be renewed." />
        </div>
        <DialogFooter dialog={dialog} failure={failure} busy={busy} submit="Add the evidence" />
      </form>
    </FormDialog>
  );
}
