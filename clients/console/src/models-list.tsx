import { useEffect, useState } from "preact/hooks";

import { type ApprovalState, type Model, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { CreateModelDialog } from "./create-model.tsx";
import { learningTypeLabel, useLearningTypes } from "./learning-types.ts";
import { go } from "./router.ts";
import { ApprovalBadge, approvalLabel, Choice, ErrorNote, Table, useDebounced, when } from "./ui.tsx";

export const PAGE_SIZE = 100;
const APPROVALS: ApprovalState[] = ["draft", "in_review", "approved", "restricted", "blocked", "retired"];

interface Filters {
  q: string;
  learning_type: string;
  tag: string;
  approval: string;
  archived: boolean;
}

/** The AI models repository: search, filters, cursor paging, and "Create an AI model". */
export function ModelsList() {
  const { registry, canEdit } = useConsole();
  const types = useLearningTypes();
  const [filters, setFilters] = useState<Filters>({
    q: "",
    learning_type: "",
    tag: "",
    approval: "",
    archived: false,
  });
  const settled = useDebounced(filters, 250);
  const [models, setModels] = useState<Model[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [state, setState] = useState<"loading" | "more" | "ready" | "failed">("loading");
  const [error, setError] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);
  const [attempt, setAttempt] = useState(0);

  async function load(cursor: string | null) {
    setState(cursor ? "more" : "loading");
    try {
      const { data } = await unwrap(
        registry.GET("/v1/models", {
          params: {
            query: {
              q: settled.q.trim() || undefined,
              learning_type: (settled.learning_type || undefined) as Model["learning_type"] | undefined,
              tag: settled.tag.trim() ? [settled.tag.trim().toLowerCase()] : undefined,
              approval: settled.approval ? [settled.approval as ApprovalState] : undefined,
              archived: settled.archived,
              limit: PAGE_SIZE,
              cursor: cursor ?? undefined,
            },
          },
        }),
      );
      setModels((shown) => (cursor ? [...shown, ...data.items] : data.items));
      setNext(data.next_cursor ?? null);
      setState("ready");
    } catch (e) {
      setError(e);
      setState("failed");
    }
  }

  useEffect(() => {
    void load(null);
  }, [settled, registry, attempt]);

  const set = (patch: Partial<Filters>) => setFilters({ ...filters, ...patch });
  const filtered = !!(filters.q || filters.learning_type || filters.tag || filters.approval || filters.archived);

  return (
    <section aria-labelledby="models-title">
      <div class="page-head">
        <h1 id="models-title">AI models</h1>
        {canEdit && <button onClick={() => setCreating(true)}>Create an AI model</button>}
      </div>
      <form role="search" class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search AI models
          <input type="search" value={filters.q} placeholder="Name, description, functionality…" onInput={(e) => set({ q: e.currentTarget.value })} />
        </label>
        <Choice
          label="Learning type"
          value={filters.learning_type}
          onChange={(learning_type) => set({ learning_type })}
          choices={[["", "Any"], ...(types ?? []).map((t) => [t.id, t.label] as const)]}
        />
        <label>
          Tag
          <input value={filters.tag} onInput={(e) => set({ tag: e.currentTarget.value })} />
        </label>
        <Choice
          label="Approval"
          value={filters.approval}
          onChange={(approval) => set({ approval })}
          choices={[["", "Any"], ...APPROVALS.map((a) => [a, approvalLabel(a)] as const)]}
        />
        <label class="check">
          <input type="checkbox" role="switch" checked={filters.archived} onChange={(e) => set({ archived: e.currentTarget.checked })} />
          Archived only
        </label>
      </form>
      {state === "failed" ? (
        <ErrorNote error={error} onRetry={() => setAttempt(attempt + 1)} />
      ) : state === "loading" && models.length === 0 ? (
        <p aria-busy="true" role="status">
          Loading AI models…
        </p>
      ) : models.length === 0 ? (
        <div class="empty" role="status">
          {filtered ? (
            <>
              <p>No AI models match these filters.</p>
              <button class="secondary" onClick={() => setFilters({ q: "", learning_type: "", tag: "", approval: "", archived: false })}>
                Clear the filters
              </button>
            </>
          ) : (
            <>
              <p>No AI models in this workspace yet.</p>
              {canEdit ? <p>Start with Create an AI model: name it and choose its learning type.</p> : <p>Editors of this workspace can add them.</p>}
            </>
          )}
        </div>
      ) : (
        <>
          <p role="status" class="muted" aria-busy={state === "loading"}>
            {models.length} AI model{models.length === 1 ? "" : "s"} shown{next ? ", more to load" : ""}
          </p>
          <div class="overflow-auto">
            <Table caption="AI models" columns={["Name", "Learning type", "Functionality", "Tags", "Approval", "Updated"]}>
              {models.map((m) => (
                <tr key={m.id}>
                  <th scope="row">
                    <a href={`#/models/${m.id}`}>{m.name}</a>
                    {m.archived && <span class="badge"> archived</span>}
                  </th>
                  <td>{learningTypeLabel(types, m.learning_type)}</td>
                  <td>{m.functionality}</td>
                  <td>{m.tags.join(", ")}</td>
                  <td>
                    <ApprovalBadge state={m.approval} />
                  </td>
                  <td>{when(m.updated_at)}</td>
                </tr>
              ))}
            </Table>
          </div>
          {next && (
            <button class="secondary" aria-busy={state === "more"} disabled={state === "more"} onClick={() => load(next)}>
              Load more AI models
            </button>
          )}
        </>
      )}
      {creating && (
        <CreateModelDialog
          onClose={() => setCreating(false)}
          onCreated={(model) => {
            setCreating(false);
            go(`/models/${model.id}`);
          }}
        />
      )}
    </section>
  );
}
