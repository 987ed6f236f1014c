/**
 * The gateway's Models screen, in the product documents' words: "Models" (what clients name:
 * the gateway's model groups, each a failover order of instances) and "Model instances" (the
 * backends: local, by host, port and protocol; or cloud, by URL, token and proxy). Secrets go
 * in and never come back: the gateway answers only whether one is stored.
 */
import { useEffect, useRef, useState } from "preact/hooks";

import {
  ApiError,
  type Group,
  type GroupCreate,
  type Instance,
  type InstanceCheck,
  type InstanceCreate,
  type Model,
  unwrap,
} from "./api.ts";
import { useConsole } from "./context.ts";
import { KeysPanel, useGroups } from "./keys.tsx";
import { Playground } from "./playground.tsx";
import { PolicyPanel } from "./policy.tsx";
import { RequestLogPanel } from "./requests.tsx";
import { DataTable, DialogFooter, Field, FormDialog, Options, useItems, useList, useSubmit, when } from "./ui.tsx";

export type Tab = "models" | "instances" | "keys" | "requests" | "playground" | "policy";
const TABS: [Tab, string][] = [
  ["models", "Models"],
  ["instances", "Model instances"],
  ["keys", "API keys"],
  ["requests", "Request log"],
  ["playground", "Playground"],
  ["policy", "Workspace policy"],
];
const TITLE: Record<Tab, string> = { models: "Models", instances: "Models", keys: "API keys", requests: "Request log", playground: "Playground", policy: "Workspace policy" };
const FAILOVER =
  "Clients of the gateway name a model; the gateway answers from its first model instance that is up, in the order given, and fails over to the next.";
const INTRO: Record<Tab, string> = {
  models: FAILOVER,
  instances: FAILOVER,
  keys: "Programs call the gateway with an API key; each key may be held to some models, to limits and to an expiry.",
  requests: "Every request a program made to the gateway: which model, which instances were tried, the answer and its times.",
  policy: "Whether AI models that are not approved may be deployed and served in this workspace.",
  playground: "Ask a model as a program would (with an API key): the answer streams in, with the model instance that served it.",
};

export function GatewayModels(props: { tab: Tab }) {
  const { gateway } = useConsole();
  const instances = useItems(
    () => gateway.GET("/v1/instances", { params: { query: { limit: 200 } } }),
    [gateway],
  );
  return (
    <section aria-labelledby="gateway-title">
      <div class="page-head">
        <h1 id="gateway-title">{TITLE[props.tab]}</h1>
      </div>
      <p class="muted">{INTRO[props.tab]}</p>
      <nav aria-label="Gateway sections" class="tabs">
        <ul>
          {TABS.map(([key, label]) => (
            <li key={key}>
              <a href={`#/gateway/${key}`} aria-current={props.tab === key ? "page" : undefined}>
                {label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      {props.tab === "models" && <GroupsPanel instances={instances.items ?? []} />}
      {props.tab === "instances" && <InstancesPanel list={instances} />}
      {props.tab === "keys" && <KeysPanel />}
      {props.tab === "requests" && <RequestLogPanel />}
      {props.tab === "playground" && <Playground />}
      {props.tab === "policy" && <PolicyPanel />}
    </section>
  );
}

function GroupsPanel(props: { instances: Instance[] }) {
  const { canEdit } = useConsole();
  const groups = useGroups();
  const [creating, setCreating] = useState(false);
  const names = new Map(props.instances.map((i) => [i.id, i.name]));
  return (
    <>
      <div class="page-head">
        <h2>Models</h2>
        {canEdit && <button onClick={() => setCreating(true)}>Create a model</button>}
      </div>
      <DataTable
        what="models"
        list={groups}
        empty="No models yet: create one and give it its model instances."
        caption="Models"
        columns={["Name (what clients send as model)", "Model instances, in failover order", "Serving", "Enabled"]}
        row={(g) => (
          <tr key={g.id}>
            <th scope="row">{g.name}</th>
            <td>
              {g.instance_ids.length === 0 ? (
                <span class="muted">none{g.registry_model_id ? " (its deployments join it)" : ""}</span>
              ) : (
                <ol class="inline-list">
                  {g.instance_ids.map((id, index) => (
                    <li key={id}>
                      {index + 1}. {names.get(id) ?? id.slice(0, 8)}
                    </li>
                  ))}
                </ol>
              )}
            </td>
            <td>
              {g.policy === null || g.policy === undefined
                ? "yes"
                : g.policy.serving
                  ? "yes"
                  : <span title={g.policy.reason ?? ""}>refused: {g.policy.reason}</span>}
            </td>
            <td>{g.enabled ? "yes" : "no"}</td>
          </tr>
        )}
      />
      {creating && (
        <CreateGroupDialog
          instances={props.instances}
          onClose={() => setCreating(false)}
          onCreated={() => {
            setCreating(false);
            groups.reload();
          }}
        />
      )}
    </>
  );
}

function healthLabel(instance: Instance): string {
  const { status, reason, checked_at, cooldown_until } = instance.health;
  if (!instance.enabled) return "disabled";
  if (status === "cooldown" && cooldown_until) return `cooling down until ${when(cooldown_until)}`;
  // Served until a check says otherwise; say so rather than "up".
  if (status === "up" && !checked_at) return "not checked yet";
  return reason ? `${status}: ${reason}` : status;
}

function where(instance: Instance): string {
  return instance.kind === "local"
    ? `${instance.protocol}://${instance.host}:${instance.port}${instance.path_prefix}`
    : (instance.base_url ?? "");
}

function InstancesPanel(props: { list: ReturnType<typeof useList<Instance>> }) {
  const { gateway, canAdmin, canOperate } = useConsole();
  const [creating, setCreating] = useState(false);
  const [checks, setChecks] = useState<Record<string, InstanceCheck | ApiError | "busy">>({});

  async function check(instance: Instance) {
    setChecks((c) => ({ ...c, [instance.id]: "busy" }));
    try {
      const { data } = await unwrap(
        gateway.POST("/v1/instances/{instance_id}/check", { params: { path: { instance_id: instance.id } } }),
      );
      setChecks((c) => ({ ...c, [instance.id]: data }));
    } catch (error) {
      setChecks((c) => ({ ...c, [instance.id]: error instanceof ApiError ? error : new ApiError(0, null) }));
    }
  }

  return (
    <>
      <div class="page-head">
        <h2>Model instances</h2>
        {canAdmin && <button onClick={() => setCreating(true)}>Create a model instance</button>}
      </div>
      <DataTable
        what="model instances"
        list={props.list}
        empty="No model instances yet."
        caption="Model instances"
        columns={["Name", "Kind", "Where", "Upstream model", "Secrets", "Health", canOperate && "Check"]}
        row={(i) => {
          const result = checks[i.id];
          return (
            <tr key={i.id}>
              <th scope="row">{i.name}</th>
              <td>{i.kind}</td>
              <td>
                <code>{where(i)}</code>
                {i.proxy_url && <small> via proxy {i.proxy_url}</small>}
              </td>
              <td>{i.upstream_model}</td>
              <td>{secretsLabel(i)}</td>
              <td>{healthLabel(i)}</td>
              {canOperate && (
                <td>
                  <button
                    class="secondary outline"
                    aria-label={`Check ${i.name} now`}
                    aria-busy={result === "busy"}
                    disabled={result === "busy"}
                    onClick={() => check(i)}
                  >
                    Check now
                  </button>
                  {result && result !== "busy" && (
                    <small role="status">
                      {result instanceof ApiError
                        ? result.message
                        : result.ok
                          ? ` answered in ${result.latency_ms.toFixed(0)} ms`
                          : ` failed: ${result.error ?? "no answer"}`}
                    </small>
                  )}
                </td>
              )}
            </tr>
          );
        }}
      />
      {creating && (
        <CreateInstanceDialog
          onClose={() => setCreating(false)}
          onCreated={() => {
            setCreating(false);
            props.list.reload();
          }}
        />
      )}
    </>
  );
}

/** Say which secrets are stored, never what they are (the gateway cannot answer them). */
function secretsLabel(instance: Instance): string {
  const held = [
    instance.has_token ? "token" : null,
    instance.has_proxy_password ? "proxy password" : null,
    ...instance.secret_header_names.map((name) => `header ${name}`),
  ].filter(Boolean);
  return held.length ? `stored: ${held.join(", ")}` : "none";
}

function CreateInstanceDialog(props: { onClose: () => void; onCreated: (instance: Instance) => void }) {
  const { gateway } = useConsole();
  const dialog = useRef<HTMLDialogElement>(null);
  const { errors, failure, busy, onSubmit } = useSubmit(dialog);
  const [key] = useState(() => crypto.randomUUID());
  const [kind, setKind] = useState<"local" | "cloud">("local");
  const [form, setForm] = useState({
    name: "",
    host: "",
    port: "",
    protocol: "http",
    base_url: "",
    token: "",
    proxy_url: "",
    proxy_username: "",
    proxy_password: "",
    upstream_model: "",
    max_concurrency: "",
  });
  const set = (name: keyof typeof form) => (e: { currentTarget: { value: string } }) =>
    setForm({ ...form, [name]: e.currentTarget.value });

  function body(): InstanceCreate {
    const common = {
      name: form.name,
      upstream_model: form.upstream_model,
      ...(form.max_concurrency ? { max_concurrency: Number(form.max_concurrency) } : {}),
    };
    if (kind === "local") {
      return {
        ...common,
        kind,
        host: form.host,
        port: form.port ? Number(form.port) : null,
        protocol: form.protocol as InstanceCreate["protocol"],
      };
    }
    return {
      ...common,
      kind,
      base_url: form.base_url,
      ...(form.token ? { token: form.token } : {}),
      ...(form.proxy_url ? { proxy_url: form.proxy_url } : {}),
      ...(form.proxy_username ? { proxy_username: form.proxy_username } : {}),
      ...(form.proxy_password ? { proxy_password: form.proxy_password } : {}),
    };
  }

  return (
    <FormDialog id="create-instance-title" title="Create a model instance" dialog={dialog} onClose={props.onClose}>
          <form
            onSubmit={onSubmit(async () => {
              const { data } = await unwrap(
                gateway.POST("/v1/instances", { body: body(), params: { header: { "Idempotency-Key": key } } }),
              );
              props.onCreated(data);
            })}
          >
            <Field label="Name" required error={errors.name}>
              {(a) => <input {...a} value={form.name} onInput={set("name")} maxLength={100} />}
            </Field>
            <fieldset>
              <legend>Kind</legend>
              <label>
                <input type="radio" name="kind" checked={kind === "local"} onChange={() => setKind("local")} />
                Local: a model server on your network (host, port, protocol)
              </label>
              <label>
                <input type="radio" name="kind" checked={kind === "cloud"} onChange={() => setKind("cloud")} />
                Cloud: an API by URL, with a token and optionally a proxy
              </label>
            </fieldset>
            {kind === "local" ? (
              <div class="grid">
                <Field label="Host" required error={errors.host}>
                  {(a) => <input {...a} value={form.host} onInput={set("host")} placeholder="10.0.0.12" />}
                </Field>
                <Field label="Port" required error={errors.port}>
                  {(a) => <input {...a} type="number" min={1} max={65535} value={form.port} onInput={set("port")} />}
                </Field>
                <Field label="Protocol" error={errors.protocol}>
                  {(a) => (
                    <select {...a} value={form.protocol} onChange={set("protocol")}>
                      <option value="http">http</option>
                      <option value="https">https</option>
                    </select>
                  )}
                </Field>
              </div>
            ) : (
              <>
                <Field label="Base URL" required error={errors.base_url} hint="The API's URL; a trailing /v1 is optional.">
                  {(a) => <input {...a} type="url" value={form.base_url} onInput={set("base_url")} placeholder="https://api.openai.com/v1" />}
                </Field>
                <Field label="Token" error={errors.token} hint="Sent as Authorization: Bearer. Write-only: stored encrypted, never shown again.">
                  {(a) => <input {...a} type="password" autoComplete="off" value={form.token} onInput={set("token")} />}
                </Field>
                <Field label="Proxy URL" error={errors.proxy_url}>
                  {(a) => <input {...a} type="url" value={form.proxy_url} onInput={set("proxy_url")} placeholder="http://proxy.example.org:3128" />}
                </Field>
                <div class="grid">
                  <Field label="Proxy user name" error={errors.proxy_username}>
                    {(a) => <input {...a} value={form.proxy_username} onInput={set("proxy_username")} autoComplete="off" />}
                  </Field>
                  <Field label="Proxy password" error={errors.proxy_password} hint="Write-only.">
                    {(a) => <input {...a} type="password" autoComplete="off" value={form.proxy_password} onInput={set("proxy_password")} />}
                  </Field>
                </div>
              </>
            )}
            <div class="grid">
              <Field label="Upstream model" required error={errors.upstream_model} hint="Sent to the backend as model.">
                {(a) => <input {...a} value={form.upstream_model} onInput={set("upstream_model")} />}
              </Field>
              <Field label="Most requests at once" error={errors.max_concurrency} hint="Empty: no limit.">
                {(a) => <input {...a} type="number" min={1} value={form.max_concurrency} onInput={set("max_concurrency")} />}
              </Field>
            </div>
            <DialogFooter dialog={dialog} failure={failure} busy={busy} submit="Create the model instance" />
          </form>
    </FormDialog>
  );
}

function CreateGroupDialog(props: { instances: Instance[]; onClose: () => void; onCreated: (group: Group) => void }) {
  const { gateway, registry } = useConsole();
  const dialog = useRef<HTMLDialogElement>(null);
  const { errors, failure, busy, submit } = useSubmit(dialog);
  const [key] = useState(() => crypto.randomUUID());
  const [form, setForm] = useState({ name: "", description: "", registry_model_id: "" });
  const [order, setOrder] = useState<string[]>([]);
  const [models, setModels] = useState<Model[]>([]);
  useEffect(() => {
    // The registry's models a gateway model may follow (optional; their deployments join it).
    unwrap(registry.GET("/v1/models", { params: { query: { limit: 200 } } })).then(
      ({ data }) => setModels(data.items),
      () => setModels([]),
    );
  }, [registry]);
  const names = new Map(props.instances.map((i) => [i.id, i.name]));
  const toggle = (id: string, on: boolean) => setOrder(on ? [...order, id] : order.filter((x) => x !== id));
  const move = (index: number, by: number) => {
    const next = [...order];
    const [moved] = next.splice(index, 1);
    next.splice(index + by, 0, moved!);
    setOrder(next);
  };
  const set = (name: keyof typeof form) => (e: { currentTarget: { value: string } }) =>
    setForm({ ...form, [name]: e.currentTarget.value });

  return (
    <FormDialog id="create-group-title" title="Create a model" dialog={dialog} onClose={props.onClose}>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              const body: GroupCreate = {
                name: form.name,
                description: form.description,
                instance_ids: order,
                ...(form.registry_model_id ? { registry_model_id: form.registry_model_id } : {}),
              };
              void submit(async () => {
                const { data } = await unwrap(
                  gateway.POST("/v1/groups", { body, params: { header: { "Idempotency-Key": key } } }),
                );
                props.onCreated(data);
              });
            }}
          >
            <Field label="Name" required error={errors.name} hint="What clients send as model, e.g. chat.">
              {(a) => <input {...a} value={form.name} onInput={set("name")} maxLength={100} />}
            </Field>
            <Field label="Description" error={errors.description}>
              {(a) => <textarea {...a} rows={2} value={form.description} onInput={set("description")} />}
            </Field>
            <fieldset>
              <legend>Model instances</legend>
              {props.instances.length === 0 ? (
                <p class="muted">No model instances yet: an admin creates them under Model instances.</p>
              ) : (
                props.instances.map((i) => (
                  <label key={i.id}>
                    <input type="checkbox" checked={order.includes(i.id)} onChange={(e) => toggle(i.id, e.currentTarget.checked)} />
                    <span>
                      {i.name} <small class="muted">({i.kind}, {i.upstream_model})</small>
                    </span>
                  </label>
                ))
              )}
              {errors.instance_ids && <small class="field-error">{errors.instance_ids}</small>}
            </fieldset>
            {order.length > 0 && (
              <section aria-labelledby="failover-order">
                <h3 id="failover-order">Failover order</h3>
                <ol aria-label="Failover order">
                  {order.map((id, index) => (
                    <li key={id}>
                      {names.get(id)}{" "}
                      <button type="button" class="secondary outline small" aria-label={`Move ${names.get(id)} up`} disabled={index === 0} onClick={() => move(index, -1)}>
                        ↑
                      </button>{" "}
                      <button type="button" class="secondary outline small" aria-label={`Move ${names.get(id)} down`} disabled={index === order.length - 1} onClick={() => move(index, 1)}>
                        ↓
                      </button>
                    </li>
                  ))}
                </ol>
              </section>
            )}
            <Field label="Follow an AI model of the registry" error={errors.registry_model_id} hint="Its running deployments join this model; the policy gate applies.">
              {(a) => (
                <select {...a} value={form.registry_model_id} onChange={set("registry_model_id")}>
                  <Options choices={[["", "(none)"], ...models.map((m) => [m.id, m.name] as const)]} />
                </select>
              )}
            </Field>
            <DialogFooter dialog={dialog} failure={failure} busy={busy} submit="Create the model" />
          </form>
    </FormDialog>
  );
}
