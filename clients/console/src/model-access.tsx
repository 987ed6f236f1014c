/**
 * An AI model's Access (who may see, deploy or edit it: the deployer's per-model grants) and
 * Usage (what the gateway served of it per UTC day, from the registry, as a small SVG chart).
 */
import { useRef, useState } from "preact/hooks";

import { type AccessGrant, type Model, type ModelUsage, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { Confirm, DataTable, ErrorNote, Field, Loading, Options, Table, useAction, useItems, useList, useSubmit, when } from "./ui.tsx";
import { NO_ACCESS } from "./versions.tsx";

type Level = AccessGrant["level"];
const LEVELS: [Level, string][] = [
  ["viewer", "Viewer"],
  ["deployer", "Deployer"],
  ["editor", "Editor"],
];

export function AccessPanel(props: { model: Model }) {
  const { deployer, canEdit } = useConsole();
  const model = props.model;
  const grants = useItems<AccessGrant>(
    () =>
      deployer.GET("/v1/models/{model_id}/access", {
        params: { path: { model_id: model.id }, query: { limit: 200, sort: "subject" } },
      }),
    [deployer, model.id],
  );
  const action = useAction();
  const busy = action.busy;

  const revoke = (grant: AccessGrant) =>
    action.run(grant.id, async () => {
      await unwrap(
        deployer.DELETE("/v1/models/{model_id}/access/{grant_id}", {
          params: { path: { model_id: model.id, grant_id: grant.id } },
        }),
      );
      grants.reload();
    });

  const change = (grant: AccessGrant, level: Level) =>
    action
      .run(grant.id, () =>
        // If-Match on the grant as the person saw it: a change made meanwhile is a 412.
        unwrap(
          deployer.PATCH("/v1/models/{model_id}/access/{grant_id}", {
            params: { path: { model_id: model.id, grant_id: grant.id }, header: { "If-Match": grant.etag } },
            body: { level },
          }),
        ),
      )
      .finally(grants.reload);

  return (
    <>
      {canEdit && <GrantForm model={model} onGranted={grants.reload} />}
      <article aria-labelledby="access-title">
        <h2 id="access-title">Who has access</h2>
        <p class="muted">
          Besides the workspace's roles: a grant lets one person (or everyone with a role) see, deploy
          or edit this AI model only.
        </p>
        <DataTable
          actionError={action.error}
          what="the access grants"
          list={grants}
          empty="No grants: only the workspace's roles apply."
          notFound={NO_ACCESS}
          caption={`Access grants of ${model.name}`}
          columns={["Who", "Level", "Granted by", "Since", "Actions"]}
          row={(g) => (
            <tr key={g.id}>
              <th scope="row">
                {g.subject} <small class="muted">({g.subject_type === "role" ? "everyone with the role" : "user"})</small>
              </th>
              <td>
                {canEdit ? (
                  <select
                    class="inline-select"
                    aria-label={`Access level of ${g.subject}`}
                    value={g.level}
                    disabled={busy !== null}
                    onChange={(e) => void change(g, e.currentTarget.value as Level)}
                  >
                    <Options choices={LEVELS.map(([value]) => [value, value] as const)} />
                  </select>
                ) : (
                  g.level
                )}
              </td>
              <td>{g.created_by}</td>
              <td>{when(g.created_at)}</td>
              <td class="actions-cell">
                {canEdit && (
                  <Confirm
                    text="Revoke"
                    label={`Revoke ${g.subject}'s access`}
                    question={`Revoke ${g.subject}'s access to ${model.name}?`}
                    yes={`Yes, revoke ${g.subject}'s access`}
                    disabled={busy !== null}
                    onConfirm={() => revoke(g)}
                  />
                )}
              </td>
            </tr>
          )}
        />
      </article>
    </>
  );
}

function GrantForm(props: { model: Model; onGranted: () => void }) {
  const { deployer } = useConsole();
  const form = useRef<HTMLFormElement>(null);
  const { errors, failure, busy, onSubmit } = useSubmit(form);
  const [subjectType, setSubjectType] = useState<"user" | "role">("user");
  const [subject, setSubject] = useState("");
  const [level, setLevel] = useState<Level>("viewer");
  const [done, setDone] = useState<string | null>(null);
  return (
    <article aria-labelledby="grant-title">
      <h2 id="grant-title">Grant access</h2>
      <form
        ref={form}
        onSubmit={onSubmit(async () => {
          setDone(null);
          const { data } = await unwrap(
            deployer.POST("/v1/models/{model_id}/access", {
              params: { path: { model_id: props.model.id } },
              body: { subject_type: subjectType, subject: subject.trim(), level },
            }),
          );
          setDone(`${data.subject} may now act as ${data.level} on ${props.model.name}.`);
          setSubject("");
          props.onGranted();
        })}
      >
        <div class="grid">
          <Field label="Grant to" error={errors.subject_type}>
            {(a) => (
              <select {...a} value={subjectType} onChange={(e) => setSubjectType(e.currentTarget.value as "user" | "role")}>
                <option value="user">A user</option>
                <option value="role">Everyone with a role</option>
              </select>
            )}
          </Field>
          <Field
            label={subjectType === "user" ? "User" : "Role"}
            required
            error={errors.subject}
            hint={subjectType === "user" ? "Their sign-in name (subject), e.g. alice." : "e.g. operator."}
          >
            {(a) => <input {...a} value={subject} onInput={(e) => setSubject(e.currentTarget.value)} />}
          </Field>
          <Field
            label="Access level"
            error={errors.level}
            hint="A viewer sees the model, its versions and deployments; a deployer also deploys and rolls it out; an editor also uploads versions and manages access."
          >
            {(a) => (
              <select {...a} value={level} onChange={(e) => setLevel(e.currentTarget.value as Level)}>
                <Options choices={LEVELS} />
              </select>
            )}
          </Field>
        </div>
        {failure ? <ErrorNote error={failure} /> : null}
        {done && <p role="status">{done}</p>}
        <button type="submit" aria-busy={busy} disabled={busy || !subject.trim()}>
          Grant access
        </button>
      </form>
    </article>
  );
}

const DAY_MS = 86_400_000;

/** Return every UTC day from `from` to `to` (ISO dates), each with its counts (0 when none). */
export function fillDays(usage: ModelUsage): { day: string; requests: number; errors: number; tokens: number }[] {
  const byDay = new Map(usage.days.map((d) => [d.day, d]));
  const days = [];
  for (let t = Date.parse(`${usage.from}T00:00:00Z`); t <= Date.parse(`${usage.to}T00:00:00Z`); t += DAY_MS) {
    const day = new Date(t).toISOString().slice(0, 10);
    const d = byDay.get(day);
    days.push({ day, requests: d?.requests ?? 0, errors: d?.errors ?? 0, tokens: d?.total_tokens ?? 0 });
  }
  return days;
}

export function UsagePanel(props: { model: Model }) {
  const { registry } = useConsole();
  const [range, setRange] = useState(30);
  const usage = useList<ModelUsage>(
    async () => {
      const to = new Date().toISOString().slice(0, 10);
      const from = new Date(Date.now() - (range - 1) * DAY_MS).toISOString().slice(0, 10);
      const { data } = await unwrap(
        registry.GET("/v1/models/{model_id}/usage", { params: { path: { model_id: props.model.id }, query: { from, to } } }),
      );
      return [data];
    },
    [registry, props.model.id, range],
  );
  return (
    <article aria-labelledby="usage-title">
      <div class="page-head">
        <h2 id="usage-title">Usage per day</h2>
        <label class="inline">
          Period{" "}
          <select value={range} onChange={(e) => setRange(Number(e.currentTarget.value))}>
            <option value={7}>Last 7 days</option>
            <option value={30}>Last 30 days</option>
            <option value={90}>Last 90 days</option>
          </select>
        </label>
      </div>
      <p class="muted">What the gateway served of this AI model, by UTC day (every group bound to it).</p>
      {usage.error ? (
        <ErrorNote error={usage.error} onRetry={usage.reload} />
      ) : usage.items === null ? (
        <Loading what="the usage" />
      ) : (
        <UsageChart usage={usage.items[0]!} />
      )}
    </article>
  );
}

function UsageChart(props: { usage: ModelUsage }) {
  const { usage } = props;
  const days = fillDays(usage);
  const totals = usage.totals;
  if (totals.requests === 0) {
    return (
      <p role="status" class="empty">
        No requests served from {usage.from} to {usage.to}.
      </p>
    );
  }
  const max = Math.max(...days.map((d) => d.requests), 1);
  const width = 720;
  const height = 180;
  const left = 40;
  const bottom = 24;
  const slot = (width - left) / days.length;
  const bar = Math.max(2, slot * 0.7);
  const y = (n: number) => height - bottom - (n / max) * (height - bottom - 10);
  const summary = `${totals.requests} requests (${totals.errors} failed) and ${totals.total_tokens} tokens from ${usage.from} to ${usage.to}`;
  return (
    <>
      <dl class="usage-totals">
        <div>
          <dt>Requests</dt>
          <dd>{totals.requests.toLocaleString()}</dd>
        </div>
        <div>
          <dt>Failed</dt>
          <dd>{totals.errors.toLocaleString()}</dd>
        </div>
        <div>
          <dt>Tokens</dt>
          <dd>
            {totals.total_tokens.toLocaleString()}{" "}
            <small class="muted">
              ({totals.prompt_tokens.toLocaleString()} prompt, {totals.completion_tokens.toLocaleString()} completion)
            </small>
          </dd>
        </div>
      </dl>
      <figure>
        <svg class="usage-chart" viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`Requests per day: ${summary}`}>
          <line x1={left} y1={height - bottom} x2={width} y2={height - bottom} class="axis" />
          <text x={left - 6} y={y(max) + 4} text-anchor="end" class="tick">
            {max}
          </text>
          <text x={left - 6} y={height - bottom + 4} text-anchor="end" class="tick">
            0
          </text>
          {days.map((d, i) => {
            const x = left + i * slot + (slot - bar) / 2;
            return (
              <g key={d.day}>
                <rect x={x} y={y(d.requests)} width={bar} height={height - bottom - y(d.requests)} class="ok">
                  <title>
                    {d.day}: {d.requests} requests, {d.errors} failed, {d.tokens} tokens
                  </title>
                </rect>
                {d.errors > 0 && <rect x={x} y={y(d.errors)} width={bar} height={height - bottom - y(d.errors)} class="failed" />}
              </g>
            );
          })}
          <text x={left} y={height - 6} class="tick">
            {usage.from}
          </text>
          <text x={width} y={height - 6} text-anchor="end" class="tick">
            {usage.to}
          </text>
        </svg>
        <figcaption>
          <span class="key ok" /> requests <span class="key failed" /> failed
        </figcaption>
      </figure>
      <details>
        <summary>The same as a table</summary>
        <Table caption="Usage per day" columns={["Day (UTC)", "Requests", "Failed", "Tokens"]}>
          {days
            .filter((d) => d.requests > 0)
            .map((d) => (
              <tr key={d.day}>
                <th scope="row">{d.day}</th>
                <td>{d.requests}</td>
                <td>{d.errors}</td>
                <td>{d.tokens}</td>
              </tr>
            ))}
        </Table>
      </details>
    </>
  );
}
