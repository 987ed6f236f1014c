/**
 * An AI model's Version section: the versions the deployer holds (each an uploaded project zip
 * with its run manifest) and "Upload a version", which reads the zip's manifest in the browser,
 * shows it, and sends the zip only once the person confirms, with a progress bar.
 */
import { useEffect, useRef, useState } from "preact/hooks";

import { type Manifest, type Model, type ModelVersion, uploadVersion } from "./api.ts";
import { useConsole } from "./context.ts";
import { type ManifestReading, readProjectManifest } from "./manifest.ts";
import { DataTable, DialogFooter, Field, FormDialog, Options, useItems, useSubmit, when } from "./ui.tsx";

/** Return a size as a person reads it (1.2 MB). */
export function bytes(size: number): string {
  if (size < 1024) return `${size} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** Return a manifest in one line: how it runs, where it listens, what it offers, its limits. */
export function manifestSummary(m: Manifest): string {
  const runs = m.dockerfile ? "own Dockerfile" : (m.image ?? "");
  const offers = m.protocol === "openai" ? "OpenAI API" : `handlers ${(m.handlers ?? []).map((h) => h.name).join(", ")}`;
  return `${runs}, port ${m.port ?? 8080}, ${offers}, ${m.max_ram_mb ?? 512} MB, ${m.cores ?? 1} cores`;
}

/** A manifest's every field, as a definition list (what will run on a device). */
export function ManifestFacts(props: { manifest: Manifest }) {
  const m = props.manifest;
  const env = Object.entries(m.env ?? {});
  return (
    <dl class="manifest" aria-label="Run manifest">
      <dt>Runs in</dt>
      <dd>{m.dockerfile ? "the project's own Dockerfile" : <code>{m.image}</code>}</dd>
      <dt>Main file</dt>
      <dd>
        <code>{m.main ?? "main.py"}</code> ({m.language ?? "python3"})
      </dd>
      <dt>Protocol</dt>
      <dd>{(m.protocol ?? "handlers") === "openai" ? "openai (an OpenAI-compatible server)" : "handlers (each one an HTTP endpoint)"}</dd>
      {(m.handlers ?? []).length > 0 && (
        <>
          <dt>Handlers</dt>
          <dd>
            <ul class="inline-list">
              {(m.handlers ?? []).map((h) => (
                <li key={h.name}>
                  <code>{h.name}</code>
                  {h.description ? ` (${h.description})` : ""}
                </li>
              ))}
            </ul>
          </dd>
        </>
      )}
      <dt>Input</dt>
      <dd>{m.input_type ?? "json"}</dd>
      <dt>Port</dt>
      <dd>{m.port ?? 8080}</dd>
      <dt>Health path</dt>
      <dd>
        <code>{m.health_path ?? "/healthz"}</code>
      </dd>
      <dt>Max RAM</dt>
      <dd>{m.max_ram_mb ?? 512} MB</dd>
      <dt>Cores</dt>
      <dd>{m.cores ?? 1}</dd>
      {env.length > 0 && (
        <>
          <dt>Environment</dt>
          <dd>{env.map(([k, v]) => `${k}=${v}`).join(", ")}</dd>
        </>
      )}
      {m.run_as_root && (
        <>
          <dt>Runs as</dt>
          <dd class="warning">root</dd>
        </>
      )}
    </dl>
  );
}

/** What the deployer's 404 on a model's versions or deployments means to a person. */
export const NO_ACCESS =
  "You have no access to this AI model's versions and deployments. Ask an editor of the model or an admin of the workspace for access.";

/** Return the list of a model's versions, newest first (reloadable). */
export function useVersions(modelId: string) {
  const { deployer } = useConsole();
  return useItems<ModelVersion>(
    () =>
      deployer.GET("/v1/models/{model_id}/versions", {
        params: { path: { model_id: modelId }, query: { sort: "-number", limit: 200 } },
      }),
    [deployer, modelId],
  );
}

/** The Version field of a form that sends one of the model's versions somewhere (newest first). */
export function VersionField(props: {
  versions: ModelVersion[];
  value: string;
  onChange: (id: string) => void;
  error: string | undefined;
}) {
  const choices = props.versions.map((v) => [v.id, `v${v.number}${v.title ? ` ${v.title}` : ""} (${when(v.created_at)})`] as const);
  return (
    <Field label="Version" required error={props.error}>
      {(a) => (
        <select {...a} value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
          <Options choices={choices} />
        </select>
      )}
    </Field>
  );
}

export function VersionsPanel(props: { model: Model }) {
  const { canEdit } = useConsole();
  const versions = useVersions(props.model.id);
  const [uploading, setUploading] = useState(false);
  const [uploaded, setUploaded] = useState<ModelVersion | null>(null);
  return (
    <article aria-labelledby="versions-title">
      <div class="page-head">
        <h2 id="versions-title">Versions</h2>
        {canEdit && versions.items !== null && <button onClick={() => setUploading(true)}>Upload a version</button>}
      </div>
      {uploaded && <p role="status">Version {uploaded.number} uploaded.</p>}
      <DataTable
        what="the versions"
        list={versions}
        empty="No versions yet: upload the AI project as a zip."
        notFound={NO_ACCESS}
        caption="Versions"
        columns={["Version", "Uploaded", "Size", "SHA-256", "Manifest"]}
        row={(v) => (
          <tr key={v.id}>
            <th scope="row">
              v{v.number}
              {v.title && <small> {v.title}</small>}
              {v.comment && <small class="muted block">{v.comment}</small>}
            </th>
            <td>
              {v.created_by} <small class="block">{when(v.created_at)}</small>
            </td>
            <td class="nowrap">
              {bytes(v.size_bytes)} <small class="block muted">{v.file_count} files</small>
            </td>
            <td>
              <code title={v.sha256}>{v.sha256.slice(0, 12)}</code>
            </td>
            <td>{manifestSummary(v.manifest)}</td>
          </tr>
        )}
      />
      {uploading && (
        <UploadDialog
          model={props.model}
          onClose={() => setUploading(false)}
          onUploaded={(version) => {
            setUploading(false);
            setUploaded(version);
            versions.reload();
          }}
        />
      )}
    </article>
  );
}

function UploadDialog(props: { model: Model; onClose: () => void; onUploaded: (version: ModelVersion) => void }) {
  const { config, session, workspace } = useConsole();
  const dialog = useRef<HTMLDialogElement>(null);
  const { errors, failure, busy, submit } = useSubmit(dialog);
  const [key] = useState(() => crypto.randomUUID());
  const [file, setFile] = useState<File | null>(null);
  const [reading, setReading] = useState<ManifestReading | "reading" | null>(null);
  const [title, setTitle] = useState("");
  const [comment, setComment] = useState("");
  const [progress, setProgress] = useState<{ sent: number; total: number } | null>(null);
  const [cancel] = useState(() => new AbortController());
  // Closing the dialog (Cancel, Esc) stops an upload under way.
  useEffect(() => () => cancel.abort(), []);

  async function pick(chosen: File | null) {
    setFile(chosen);
    setProgress(null);
    if (!chosen) return setReading(null);
    setReading("reading");
    setReading(await readProjectManifest(chosen));
  }

  const ready = file !== null && reading !== null && reading !== "reading" && reading.ok;
  return (
    <FormDialog id="upload-version-title" title="Upload a version" dialog={dialog} onClose={props.onClose}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!ready || !file) return;
          void submit(async () => {
            const version = await uploadVersion({
              baseUrl: config.deployer_url,
              token: session.token,
              workspace,
              modelId: props.model.id,
              // No manifest field: the deployer reads the same file from the zip.
              form: { file, title, comment },
              idempotencyKey: key,
              onProgress: (sent, total) => setProgress({ sent, total }),
              signal: cancel.signal,
            });
            props.onUploaded(version);
          });
        }}
      >
        <Field label="Project (.zip)" required error={errors.file} hint="The AI project: code, weights and modelyard.json or modelyard.yaml at its root.">
          {(a) => <input {...a} type="file" accept=".zip,application/zip" disabled={busy} onChange={(e) => void pick(e.currentTarget.files?.[0] ?? null)} />}
        </Field>
        {reading === "reading" && <p aria-busy="true">Reading the zip…</p>}
        {reading !== null && reading !== "reading" && !reading.ok && (
          <div role="alert" class="error">
            <p>
              <strong>This zip cannot be uploaded.</strong> {reading.message}
            </p>
            {reading.problems.length > 0 && (
              <ul>
                {reading.problems.map((p) => (
                  <li key={p}>{p}</li>
                ))}
              </ul>
            )}
          </div>
        )}
        {ready && file && (
          <section aria-labelledby="manifest-title" class="manifest-preview">
            <h3 id="manifest-title">
              What will run: <code>{reading.filename}</code>
            </h3>
            <p class="muted">
              {file.name}, {bytes(file.size)}
            </p>
            <ManifestFacts manifest={reading.manifest} />
          </section>
        )}
        <div class="grid">
          <Field label="Title" error={errors.title} hint="Up to 30 characters.">
            {(a) => <input {...a} maxLength={30} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />}
          </Field>
          <Field label="Comment" error={errors.comment} hint="What changed (up to 512 characters).">
            {(a) => <input {...a} maxLength={512} value={comment} onInput={(e) => setComment(e.currentTarget.value)} />}
          </Field>
        </div>
        {progress && (
          <label>
            {progress.sent < progress.total ? "Uploading" : "Uploaded, the deployer checks it"} ({Math.round((100 * progress.sent) / Math.max(progress.total, 1))}%)
            <progress value={progress.sent} max={progress.total} />
          </label>
        )}
        <DialogFooter dialog={dialog} failure={failure} busy={busy} submit="Upload the version" disabled={!ready} />
      </form>
    </FormDialog>
  );
}
