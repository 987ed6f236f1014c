import { useEffect, useRef, useState } from "preact/hooks";

import { ApiError, type Model, type ModelCreate, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { useLearningTypeState } from "./learning-types.ts";
import { MarkdownEditor } from "./markdown.tsx";
import { ErrorNote, Field, Loading, TextField } from "./ui.tsx";

type PropertyType = "string" | "number" | "boolean" | "date" | "url";
interface PropertyRow {
  name: string;
  type: PropertyType;
  value: string;
}

function propertyValue(row: PropertyRow): unknown {
  if (row.type === "number") return Number(row.value);
  if (row.type === "boolean") return row.value === "true";
  return row.value;
}

/** Return tags as the registry keeps them: lower case, split on commas. */
export function parseTags(text: string): string[] {
  return text
    .split(",")
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
}

/** The "Create an AI model" dialog: every field, the learning types with their definitions. */
export function CreateModelDialog(props: { onClose: () => void; onCreated: (model: Model) => void }) {
  const { registry } = useConsole();
  const { types, error: typesError, retry } = useLearningTypeState();
  const dialog = useRef<HTMLDialogElement>(null);
  const [form, setForm] = useState({
    name: "",
    learning_type: "",
    functionality: "",
    foundations: "",
    provider: "",
    tags: "",
    description: "",
  });
  const [properties, setProperties] = useState<PropertyRow[]>([]);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  // One key per dialog: a retried create (a lost answer) returns the first result.
  const [idempotencyKey] = useState(() => crypto.randomUUID());

  useEffect(() => {
    dialog.current?.showModal();
  }, []);

  // Editing a field the service refused clears its error: the person is fixing it.
  const set = (key: keyof typeof form) => (e: { currentTarget: { value: string } }) => {
    setForm({ ...form, [key]: e.currentTarget.value });
    if (errors[key]) setErrors({ ...errors, [key]: "" });
  };

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setFailure(null);
    const body: ModelCreate = {
      name: form.name,
      learning_type: form.learning_type as ModelCreate["learning_type"],
      functionality: form.functionality,
      foundations: form.foundations,
      provider: form.provider,
      description: form.description,
      tags: parseTags(form.tags),
      properties: Object.fromEntries(
        properties
          .filter((p) => p.name)
          .map((p) => [p.name, { type: p.type, value: propertyValue(p) }]),
      ) as ModelCreate["properties"],
    };
    try {
      const { data } = await unwrap(
        registry.POST("/v1/models", { body, params: { header: { "Idempotency-Key": idempotencyKey } } }),
      );
      props.onCreated(data);
    } catch (error) {
      const fields = error instanceof ApiError ? error.fieldErrors() : {};
      setErrors(fields);
      if (Object.keys(fields).length === 0) setFailure(error);
      else {
        // Take the person to the first field the service named.
        requestAnimationFrame(() =>
          dialog.current?.querySelector<HTMLElement>("[aria-invalid=true]")?.focus(),
        );
      }
    } finally {
      setBusy(false);
    }
  }

  return (
    <dialog ref={dialog} aria-labelledby="create-model-title" onClose={props.onClose}>
      <article>
        <header>
          <button type="button" aria-label="Close" {...({ rel: "prev" } as object)} onClick={() => dialog.current?.close()} />
          <h2 id="create-model-title">Create an AI model</h2>
        </header>
        <form onSubmit={submit} noValidate={false}>
          <Field label="Name" required error={errors.name}>
            {(a) => <input {...a} value={form.name} onInput={set("name")} maxLength={200} />}
          </Field>
          <fieldset aria-describedby={errors.learning_type ? "lt-error" : undefined}>
            <legend>
              Learning type<span class="required" aria-hidden="true" />
            </legend>
            {typesError ? (
              <ErrorNote error={typesError} onRetry={retry} />
            ) : types === null ? (
              <Loading what="the learning types" />
            ) : (
              types.map((type) => (
                <label key={type.id} class="choice">
                  <input
                    type="radio"
                    name="learning_type"
                    value={type.id}
                    required
                    checked={form.learning_type === type.id}
                    aria-labelledby={`lt-${type.id}-label`}
                    aria-describedby={`lt-${type.id}`}
                    aria-invalid={errors.learning_type ? "true" : undefined}
                    onChange={set("learning_type")}
                  />
                  <span>
                    <strong id={`lt-${type.id}-label`}>{type.label}</strong>
                    <small id={`lt-${type.id}`} class="definition">
                      {type.definition}
                    </small>
                  </span>
                </label>
              ))
            )}
            {errors.learning_type && (
              <small id="lt-error" class="field-error">
                {errors.learning_type}
              </small>
            )}
          </fieldset>
          <div class="grid">
            <TextField label="Functionality" value={form.functionality} onInput={set("functionality")} error={errors.functionality} hint='What it is used for, e.g. "image generation".' />
            <TextField label="Foundations" value={form.foundations} onInput={set("foundations")} error={errors.foundations} hint='Its architecture, e.g. "transformer".' />
          </div>
          <div class="grid">
            <TextField label="Provider" value={form.provider} onInput={set("provider")} error={errors.provider} />
            <TextField label="Tags" value={form.tags} onInput={set("tags")} error={errors.tags} hint="Separated by commas, e.g. payments, vision." />
          </div>
          <MarkdownEditor
            label="Description"
            value={form.description}
            onInput={(description) => {
              setForm({ ...form, description });
              if (errors.description) setErrors({ ...errors, description: "" });
            }}
            error={errors.description}
            hint="Markdown: features, known limits, intended use."
          />
          <fieldset class="properties">
            <legend>Custom properties</legend>
            {properties.map((row, index) => {
              const update = (patch: Partial<PropertyRow>) =>
                setProperties(properties.map((p, i) => (i === index ? { ...p, ...patch } : p)));
              return (
                <div class="grid property" key={index}>
                  <div>
                    <label htmlFor={`property-${index}-name`}>Property name</label>
                    <input id={`property-${index}-name`} value={row.name} onInput={(e) => update({ name: e.currentTarget.value })} />
                  </div>
                  <div>
                    <label htmlFor={`property-${index}-type`}>Type</label>
                    <select id={`property-${index}-type`} value={row.type} onChange={(e) => update({ type: e.currentTarget.value as PropertyType })}>
                      {["string", "number", "boolean", "date", "url"].map((t) => (
                        <option key={t}>{t}</option>
                      ))}
                    </select>
                  </div>
                  <div>
                    <label htmlFor={`property-${index}-value`}>Value</label>
                    <input
                      id={`property-${index}-value`}
                      type={row.type === "number" ? "number" : row.type === "date" ? "date" : "text"}
                      step="any"
                      value={row.value}
                      onInput={(e) => update({ value: e.currentTarget.value })}
                    />
                  </div>
                  <button type="button" class="secondary outline" onClick={() => setProperties(properties.filter((_, i) => i !== index))}>
                    Remove
                  </button>
                </div>
              );
            })}
            {errors.properties && <small class="field-error">{errors.properties}</small>}
            <button
              type="button"
              class="secondary outline"
              onClick={() => setProperties([...properties, { name: "", type: "string", value: "" }])}
            >
              Add a property
            </button>
          </fieldset>
          {failure !== null && <ErrorNote error={failure} />}
          <footer>
            <button type="button" class="secondary" onClick={() => dialog.current?.close()}>
              Cancel
            </button>
            <button type="submit" aria-busy={busy} disabled={busy}>
              Create
            </button>
          </footer>
        </form>
      </article>
    </dialog>
  );
}
