import { useEffect, useState } from "preact/hooks";

import { type AIActRole, ApiError, type LinkRead, type Model, type RiskLevel, type System, type SystemCreate, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { SystemCompliance } from "./compliance.tsx";
import { parseTags } from "./create-model.tsx";
import { go } from "./router.ts";
import { DataTable, DownloadButton, ErrorNote, Field, Loading, Options, RowLink, TextField, useDebounced, useItems } from "./ui.tsx";

const RISK_LEVELS: [RiskLevel, string][] = [
  ["unacceptable", "Prohibited practices (Art. 5): the system may never be in use."],
  ["high", "Annex III uses and safety components: the full set of obligations applies."],
  ["limited", "Transparency duties (Art. 50): people must know they deal with AI."],
  ["minimal", "No specific duties; a voluntary code of conduct (Art. 95)."],
];
const ROLES: [AIActRole, string][] = [
  ["provider", "Provider: develops the system or has it developed, and places it on the market"],
  ["deployer", "Deployer: uses the system under its own authority"],
  ["both", "Both"],
];

/** The AI systems of the workspace. */
export function SystemsList() {
  const { registry, canEdit, workspace } = useConsole();
  const [q, setQ] = useState("");
  const settled = useDebounced(q, 250);
  const systems = useItems<System>(
    () => registry.GET("/v1/systems", { params: { query: { q: settled.trim() || undefined, limit: 200 } } }),
    [settled, registry],
  );
  return (
    <section aria-labelledby="systems-title">
      <div class="page-head">
        <h1 id="systems-title">AI systems</h1>
        <div class="actions">
          <DownloadButton
            class="secondary"
            text="Export the inventory"
            name={`modelyard-inventory-${workspace}.json`}
            call={() => registry.GET("/v1/inventory/export", { params: { query: { format: "json" } }, parseAs: "blob" })}
          />
          {canEdit && <a role="button" href="#/systems/new">Create an AI system</a>}
        </div>
      </div>
      <form role="search" class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search AI systems
          <input type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
        </label>
      </form>
      <DataTable
        what="AI systems"
        list={systems}
        empty={q ? "No AI systems match." : "No AI systems in this workspace yet."}
        columns={["Name", "Risk level", "AI Act role", "Status", "Purpose"]}
        row={(s) => (
          <tr key={s.id}>
            <RowLink href={`#/systems/${s.id}`}>{s.name}</RowLink>
            <td>{s.risk_level}</td>
            <td>{s.ai_act_role ?? "—"}</td>
            <td>{s.status}</td>
            <td>{s.purpose}</td>
          </tr>
        )}
      />
    </section>
  );
}

interface Use {
  model_id: string;
  model_name: string;
  description_of_use: string;
  /** The link as saved (absent for a model chosen now). */
  saved?: LinkRead;
}

/** Create or edit an AI system; its second section, AI Models, says which models it uses and how. */
export function SystemForm(props: { id?: string }) {
  const { registry, canEdit } = useConsole();
  const [system, setSystem] = useState<System | null>(null);
  const [form, setForm] = useState({
    name: "",
    description: "",
    purpose: "",
    owner: "",
    risk_level: "",
    ai_act_role: "",
    risk_justification: "",
    tags: "",
  });
  const [uses, setUses] = useState<Use[]>([]);
  const [search, setSearch] = useState("");
  const settled = useDebounced(search, 250);
  const [found, setFound] = useState<Model[]>([]);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [useErrors, setUseErrors] = useState<Record<string, string>>({});
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [loading, setLoading] = useState(!!props.id);

  useEffect(() => {
    if (!props.id) return;
    const path = { params: { path: { system_id: props.id } } };
    Promise.all([unwrap(registry.GET("/v1/systems/{system_id}", path)), unwrap(registry.GET("/v1/systems/{system_id}/models", path))]).then(
      ([{ data, response }, links]) => {
        setSystem({ ...data, etag: response.headers.get("ETag") ?? data.etag });
        setForm({
          name: data.name,
          description: data.description,
          purpose: data.purpose,
          owner: data.owner,
          risk_level: data.risk_level,
          ai_act_role: data.ai_act_role ?? "",
          risk_justification: data.risk_justification,
          tags: data.tags.join(", "),
        });
        setUses(links.data.map((l) => ({ model_id: l.model_id, model_name: l.model_name, description_of_use: l.description_of_use, saved: l })));
        setLoading(false);
      },
      (e) => {
        setFailure(e);
        setLoading(false);
      },
    );
  }, [props.id, registry]);

  useEffect(() => {
    if (!settled.trim()) return setFound([]);
    unwrap(registry.GET("/v1/models", { params: { query: { q: settled.trim(), limit: 20 } } })).then(
      ({ data }) => setFound(data.items),
      () => setFound([]),
    );
  }, [settled, registry]);

  if (loading) return <Loading what="the AI system" />;
  const set = (key: keyof typeof form) => (e: { currentTarget: { value: string } }) => setForm({ ...form, [key]: e.currentTarget.value });
  const chosen = new Set(uses.map((u) => u.model_id));

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setUseErrors({});
    setFailure(null);
    const body = {
      name: form.name,
      description: form.description,
      purpose: form.purpose,
      owner: form.owner,
      risk_level: form.risk_level as RiskLevel,
      ai_act_role: (form.ai_act_role || null) as AIActRole | null,
      risk_justification: form.risk_justification,
      tags: parseTags(form.tags),
    };
    let id = props.id;
    try {
      if (!system) {
        const { data } = await unwrap(registry.POST("/v1/systems", { body: body as SystemCreate }));
        id = data.id;
      } else {
        await unwrap(
          registry.PATCH("/v1/systems/{system_id}", { params: { path: { system_id: system.id }, header: { "If-Match": system.etag } }, body }),
        );
      }
    } catch (error) {
      const fields = error instanceof ApiError ? error.fieldErrors() : {};
      setErrors(fields);
      if (Object.keys(fields).length === 0) setFailure(error);
      setBusy(false);
      return;
    }
    // The AI Models section: link new models, change descriptions of use, unlink dropped ones.
    const problems: Record<string, string> = {};
    const system_id = id!;
    for (const use of uses) {
      try {
        if (!use.saved) {
          await unwrap(registry.POST("/v1/systems/{system_id}/models", { params: { path: { system_id } }, body: { model_id: use.model_id, description_of_use: use.description_of_use } }));
        } else if (use.saved.description_of_use !== use.description_of_use) {
          await unwrap(
            registry.PATCH("/v1/systems/{system_id}/models/{model_id}", {
              params: { path: { system_id, model_id: use.model_id }, header: { "If-Match": use.saved.etag } },
              body: { description_of_use: use.description_of_use },
            }),
          );
        }
      } catch (error) {
        problems[use.model_id] = error instanceof ApiError ? (error.fieldErrors().description_of_use ?? error.message) : String(error);
      }
    }
    if (system) {
      const kept = new Set(uses.map((u) => u.model_id));
      const links = await unwrap(registry.GET("/v1/systems/{system_id}/models", { params: { path: { system_id } } })).catch(() => null);
      for (const link of links?.data ?? []) {
        if (!kept.has(link.model_id)) {
          await unwrap(registry.DELETE("/v1/systems/{system_id}/models/{model_id}", { params: { path: { system_id, model_id: link.model_id } } })).catch(
            (error: unknown) => (problems[link.model_id] = String(error)),
          );
        }
      }
    }
    setBusy(false);
    if (Object.keys(problems).length) {
      setUseErrors(problems);
      if (!system) go(`/systems/${system_id}`);
      return;
    }
    go("/systems");
  }

  if (!canEdit && !system) return <p>Viewers cannot create AI systems.</p>;
  return (
    <section aria-labelledby="system-title">
      <p>
        <a href="#/systems">← AI systems</a>
      </p>
      <h1 id="system-title">{system ? system.name : "Create an AI system"}</h1>
      <form onSubmit={submit}>
        <fieldset disabled={!canEdit}>
          <h2>About the AI system</h2>
          <TextField label="Name" required value={form.name} onInput={set("name")} error={errors.name} />
          <TextField label="Purpose" rows={2} value={form.purpose} onInput={set("purpose")} error={errors.purpose} hint="What the system is for, in a sentence or two." />
          <TextField label="Description" rows={3} value={form.description} onInput={set("description")} error={errors.description} />
          <div class="grid">
            <TextField label="Owner" value={form.owner} onInput={set("owner")} error={errors.owner} />
            <TextField label="Tags" value={form.tags} onInput={set("tags")} error={errors.tags} hint="Separated by commas." />
          </div>
          <fieldset>
            <legend>
              Risk level (EU AI Act)<span class="required" aria-hidden="true" />
            </legend>
            {RISK_LEVELS.map(([level, meaning]) => (
              <label key={level} class="choice">
                <input type="radio" name="risk_level" value={level} required checked={form.risk_level === level} onChange={set("risk_level")} aria-labelledby={`risk-${level}-label`} aria-describedby={`risk-${level}`} />
                <span>
                  <strong id={`risk-${level}-label`}>{level}</strong>
                  <small id={`risk-${level}`} class="definition">
                    {meaning}
                  </small>
                </span>
              </label>
            ))}
            {errors.risk_level && <small class="field-error">{errors.risk_level}</small>}
          </fieldset>
          <Field label="AI Act role" error={errors.ai_act_role}>
            {(a) => (
              <select {...a} value={form.ai_act_role} onChange={set("ai_act_role")}>
                <Options choices={[["", "Not decided yet"], ...ROLES]} />
              </select>
            )}
          </Field>
          <TextField label="Risk justification" rows={2} value={form.risk_justification} onInput={set("risk_justification")} error={errors.risk_justification} hint="Why this risk level, e.g. the Annex III point." />
          <h2 id="uses-title">AI Models</h2>
          <p class="muted">Choose the AI models this system uses and describe how it uses each one.</p>
          <label>
            Find AI models
            <input type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
          </label>
          {found.length > 0 && (
            <fieldset aria-label="Matching AI models">
              {found.map((m) => (
                <label key={m.id} class="check">
                  <input
                    type="checkbox"
                    checked={chosen.has(m.id)}
                    onChange={(e) =>
                      setUses(
                        e.currentTarget.checked
                          ? [...uses, { model_id: m.id, model_name: m.name, description_of_use: "" }]
                          : uses.filter((u) => u.model_id !== m.id),
                      )
                    }
                  />
                  {m.name}
                </label>
              ))}
            </fieldset>
          )}
          {uses.length === 0 ? (
            <p class="muted">No AI models chosen yet.</p>
          ) : (
            <ul class="uses" aria-labelledby="uses-title">
              {uses.map((use) => (
                <li key={use.model_id}>
                  <Field label={`Description of use for ${use.model_name}`} required error={useErrors[use.model_id]}>
                    {(a) => (
                      <textarea
                        {...a}
                        rows={2}
                        value={use.description_of_use}
                        onInput={(e) => setUses(uses.map((u) => (u.model_id === use.model_id ? { ...u, description_of_use: e.currentTarget.value } : u)))}
                      />
                    )}
                  </Field>
                  <button type="button" class="secondary outline" onClick={() => setUses(uses.filter((u) => u.model_id !== use.model_id))}>
                    Remove {use.model_name}
                  </button>
                </li>
              ))}
            </ul>
          )}
          {failure !== null && <ErrorNote error={failure} />}
          <button type="submit" aria-busy={busy} disabled={busy}>
            {system ? "Save the AI system" : "Create the AI system"}
          </button>
        </fieldset>
      </form>
      {system && <SystemCompliance system={system} />}
    </section>
  );
}
