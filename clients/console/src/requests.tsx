/**
 * The gateway's request log: one record per client request (who, which model, which instances
 * were tried, the answer's status, tokens and times), newest first, filtered and paged with the
 * API's cursor, and exported as CSV with the same filters.
 */
import { useEffect, useState } from "preact/hooks";

import { type LoggedRequest, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { useGroups, useKeys } from "./keys.tsx";
import { Choice, ErrorNote, Loading, saveBlob, Table, useDebounced, when } from "./ui.tsx";

const PAGE = 50;
type StatusClass = "2xx" | "4xx" | "5xx";
const EMPTY = { group: "", status_class: "", key_id: "", since: "", until: "" };

const iso = (local: string): string | undefined => (local ? new Date(local).toISOString() : undefined);

/** Return the filters as the API's query (empty ones left out). */
function toQuery(filters: typeof EMPTY) {
  return {
    group: filters.group || undefined,
    status_class: (filters.status_class || undefined) as StatusClass | undefined,
    key_id: filters.key_id || undefined,
    since: iso(filters.since),
    until: iso(filters.until),
  };
}

const STATUS_CLASSES = [
  ["", "Any"],
  ["2xx", "2xx: answered"],
  ["4xx", "4xx: refused"],
  ["5xx", "5xx: failed"],
] as const;

export function RequestLogPanel() {
  const { gateway } = useConsole();
  const groups = useGroups();
  const keys = useKeys();
  const keyNames = new Map((keys.items ?? []).map((k) => [k.id, k.name]));
  const [filters, setFilters] = useState(EMPTY);
  const settled = useDebounced(filters, 250);
  const [rows, setRows] = useState<LoggedRequest[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState<"first" | "more" | null>(null);
  const [attempt, setAttempt] = useState(0);
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<unknown>(null);

  const query = toQuery(settled);

  async function load(cursor: string | null) {
    setLoading(cursor ? "more" : "first");
    setError(null);
    try {
      const { data } = await unwrap(
        gateway.GET("/v1/requests", { params: { query: { ...query, sort: "-at", limit: PAGE, cursor: cursor ?? undefined } } }),
      );
      setRows((shown) => (cursor && shown ? [...shown, ...data.items] : data.items));
      setNext(data.next_cursor ?? null);
    } catch (e) {
      setError(e);
    } finally {
      setLoading(null);
    }
  }
  useEffect(() => void load(null), [settled, gateway, attempt]);

  async function exportCsv() {
    setExporting(true);
    setExportError(null);
    try {
      const { data } = await unwrap(
        // The filters as set now (not the list's, which follows them a moment later).
        gateway.GET("/v1/requests/export", { params: { query: { ...toQuery(filters), format: "csv" } }, parseAs: "blob" }),
      );
      // The export needs the bearer token, so it is fetched here and handed to the browser.
      saveBlob(data as Blob, `requests-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.csv`);
    } catch (e) {
      setExportError(e);
    } finally {
      setExporting(false);
    }
  }

  const set = (key: keyof typeof EMPTY) => (e: { currentTarget: { value: string } }) =>
    setFilters({ ...filters, [key]: e.currentTarget.value });
  const filtered = Object.values(filters).some(Boolean);
  return (
    <>
      <div class="page-head">
        <h2>Requests</h2>
        <button class="secondary" aria-busy={exporting} disabled={exporting} onClick={() => void exportCsv()}>
          Export CSV
        </button>
      </div>
      <form role="search" aria-label="Filter the requests" class="filters request-filters" onSubmit={(e) => e.preventDefault()}>
        <Choice
          label="Model"
          value={filters.group}
          onChange={(group) => setFilters({ ...filters, group })}
          choices={[["", "Any"], ...(groups.items ?? []).map((g) => [g.name, g.name] as const)]}
        />
        <Choice
          label="Status"
          value={filters.status_class}
          onChange={(status_class) => setFilters({ ...filters, status_class })}
          choices={STATUS_CLASSES}
        />
        <Choice
          label="API key"
          value={filters.key_id}
          onChange={(key_id) => setFilters({ ...filters, key_id })}
          choices={[["", "Any"], ...(keys.items ?? []).map((k) => [k.id, k.name] as const)]}
        />
        <label>
          From
          <input type="datetime-local" value={filters.since} onInput={set("since")} />
        </label>
        <label>
          To
          <input type="datetime-local" value={filters.until} onInput={set("until")} />
        </label>
        <button type="button" class="secondary outline" onClick={() => setAttempt((n) => n + 1)}>
          Refresh
        </button>
      </form>
      {exportError ? <ErrorNote error={exportError} /> : null}
      {error ? (
        <ErrorNote error={error} onRetry={() => setAttempt((n) => n + 1)} />
      ) : rows === null ? (
        <Loading what="the requests" />
      ) : rows.length === 0 ? (
        <div role="status" class="empty">
          <p>{filtered ? "No requests match these filters." : "No requests yet: programs' calls to the gateway appear here."}</p>
          {filtered && (
            <button class="secondary" onClick={() => setFilters(EMPTY)}>
              Clear the filters
            </button>
          )}
        </div>
      ) : (
        <>
          <Table
            class="striped requests"
            caption="Requests, newest first"
            columns={["When", "Model", "API key", "Status", "Model instances tried", "Tokens", "First byte", "Duration"]}
          >
            {rows.map((r) => (
              <tr key={r.id}>
                <td class="nowrap">{when(r.at)}</td>
                <td>
                  {r.group ?? "—"} <small class="muted block">{r.endpoint}{r.stream ? ", stream" : ""}</small>
                </td>
                <td>{keyNames.get(r.key_id) ?? r.key_id.slice(0, 8)}</td>
                <td>
                  <span class={`badge status-${String(r.status)[0]}xx`}>{r.status}</span>
                  {r.error_cause && <small class="muted block">{r.error_cause}</small>}
                </td>
                <td>{r.instances.length ? r.instances.join(" → ") : "—"}</td>
                <td>{r.total_tokens ?? "—"}</td>
                <td>{r.ttfb_ms == null ? "—" : `${r.ttfb_ms} ms`}</td>
                <td>{r.duration_ms} ms</td>
              </tr>
            ))}
          </Table>
          <p class="muted" role="status">
            {rows.length} request{rows.length === 1 ? "" : "s"} shown{next ? ", more to load" : ""}.
          </p>
          {next && (
            <button class="secondary" aria-busy={loading === "more"} disabled={loading !== null} onClick={() => void load(next)}>
              Load more requests
            </button>
          )}
        </>
      )}
    </>
  );
}
