/**
 * An AI model's Deploy section: choose a version, send it to chosen devices or to every device
 * with a label, then follow this model's deployments as the devices report (start, stop,
 * restart, rollback, remove, and each one's history).
 */
import { useEffect, useRef, useState } from "preact/hooks";

import {
  type Deployer_,
  type Deployment,
  type DeploymentHistoryEntry,
  type Device,
  type Model,
  unwrap,
} from "./api.ts";
import { useConsole } from "./context.ts";
import { inMotion, labelsText, ReportedState } from "./devices.tsx";
import { Confirm, DialogFooter, ErrorNote, Field, FormDialog, Loading, useList, useSubmit, when } from "./ui.tsx";
import { NO_ACCESS, useVersions } from "./versions.tsx";

type Action = "start" | "stop" | "restart" | "rollback";
const ACTION_LABEL: Record<Action, string> = { start: "Start", stop: "Stop", restart: "Restart", rollback: "Roll back" };

/** Return the actions a deployment offers now (none once it is removed). */
function offered(d: Deployment): Action[] {
  if (d.desired_state === "removed") return [];
  const run: Action[] = d.desired_state === "running" ? ["stop", "restart"] : ["start"];
  return d.previous_version_id ? [...run, "rollback"] : run;
}

/** Return a `key=value` selector as the deployer takes it, or null when it is not one. */
export function parseSelector(text: string): Record<string, string> | null {
  const selector: Record<string, string> = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [key, value, ...rest] = part.split("=");
    if (!key?.trim() || value === undefined || rest.length) return null;
    selector[key.trim()] = value.trim();
  }
  return Object.keys(selector).length ? selector : null;
}

export type Target = "devices" | "selector";

/** Where a deployment or a rollout goes: chosen devices, or every device with a label. */
export function DeviceTarget(props: {
  legend: string;
  name: string;
  target: Target;
  setTarget: (target: Target) => void;
  devices: Device[] | null;
  chosen: string[];
  setChosen: (chosen: string[]) => void;
  selector: string;
  setSelector: (selector: string) => void;
  errors: Record<string, string>;
  selectorFirst?: boolean;
}) {
  const { target, setTarget, devices, chosen, setChosen, selector, errors } = props;
  const choices: [Target, string][] = [
    ["devices", "Chosen devices"],
    ["selector", "Every device with a label"],
  ];
  if (props.selectorFirst) choices.reverse();
  return (
    <>
      <fieldset>
        <legend>{props.legend}</legend>
        {choices.map(([value, text]) => (
          <label key={value}>
            <input type="radio" name={props.name} checked={target === value} onChange={() => setTarget(value)} />
            {text}
          </label>
        ))}
      </fieldset>
      {target === "devices" ? (
        <fieldset aria-label="Devices" class="device-choice">
          {devices === null ? (
            <Loading what="the devices" />
          ) : devices.length === 0 ? (
            <p class="muted">No devices in this workspace yet.</p>
          ) : (
            devices.map((d) => (
              <label key={d.id}>
                <input
                  type="checkbox"
                  checked={chosen.includes(d.id)}
                  onChange={(e) => setChosen(e.currentTarget.checked ? [...chosen, d.id] : chosen.filter((x) => x !== d.id))}
                />
                <span>
                  {d.name} <small class="muted">({d.status}{Object.keys(d.labels).length ? `, ${labelsText(d.labels)}` : ""})</small>
                </span>
              </label>
            ))
          )}
          {errors.device_ids && <small class="field-error">{errors.device_ids}</small>}
        </fieldset>
      ) : (
        <Field
          label="Label selector"
          required
          error={errors.selector ?? (selector && !parseSelector(selector) ? "Write key=value (several: key=value, key2=value2)." : undefined)}
          hint="Every device carrying all these labels, e.g. site=berlin."
        >
          {(a) => <input {...a} value={selector} onInput={(e) => props.setSelector(e.currentTarget.value)} placeholder="site=berlin" />}
        </Field>
      )}
    </>
  );
}

function act(deployer: Deployer_, d: Deployment, action: Action | "remove") {
  const target = { params: { path: { deployment_id: d.id } } };
  switch (action) {
    case "remove":
      return deployer.DELETE("/v1/deployments/{deployment_id}", target);
    case "start":
      return deployer.POST("/v1/deployments/{deployment_id}/start", target);
    case "stop":
      return deployer.POST("/v1/deployments/{deployment_id}/stop", target);
    case "restart":
      return deployer.POST("/v1/deployments/{deployment_id}/restart", target);
    case "rollback":
      return deployer.POST("/v1/deployments/{deployment_id}/rollback", target);
  }
}

export function DeployPanel(props: { model: Model }) {
  const { deployer, canEdit } = useConsole();
  const model = props.model;
  const devices = useList<Device>(
    async () => (await unwrap(deployer.GET("/v1/devices", { params: { query: { limit: 200 } } }))).data.items,
    [deployer],
  );
  const [deployments, setDeployments] = useState<Deployment[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);
  const [historyOf, setHistoryOf] = useState<Deployment | null>(null);
  const online = new Set((devices.items ?? []).filter((d) => d.status === "online").map((d) => d.id));

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    async function load() {
      try {
        const { data } = await unwrap(
          deployer.GET("/v1/models/{model_id}/deployments", {
            params: { path: { model_id: model.id }, query: { limit: 200, sort: "-updated_at" } },
          }),
        );
        if (stopped) return;
        setDeployments(data.items);
        setError(null);
        // Follow what is in motion on an online device (an offline one reports nothing
        // until it is back: no asking every 2 s meanwhile).
        if (data.items.some((d) => inMotion(d) && online.has(d.device_id))) timer = setTimeout(load, 2000);
      } catch (e) {
        if (!stopped) setError(e);
      }
    }
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [model.id, deployer, attempt, devices.items]);

  async function run(d: Deployment, action: Action | "remove") {
    setBusy(d.id);
    setActionError(null);
    try {
      const { data } = await unwrap(act(deployer, d, action));
      setDeployments((list) => (list ?? []).map((x) => (x.id === data.id ? data : x)));
      setAttempt((n) => n + 1);
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(null);
    }
  }

  return (
    <>
      {canEdit && <DeployForm model={model} devices={devices.items} onDeployed={() => setAttempt((n) => n + 1)} />}
      <article aria-labelledby="deployments-title">
        <h2 id="deployments-title">Deployments</h2>
        {actionError ? <ErrorNote error={actionError} /> : null}
        {error ? (
          <ErrorNote error={error} onRetry={() => setAttempt((n) => n + 1)} notFound={NO_ACCESS} />
        ) : deployments === null ? (
          <Loading what="the deployments" />
        ) : deployments.length === 0 ? (
          <p role="status" class="empty">
            This AI model is on no device yet.
          </p>
        ) : (
          <table class="striped" aria-labelledby="deployments-title">
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">Version</th>
                <th scope="col">Status</th>
                <th scope="col">Asked for</th>
                <th scope="col">Updated</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {deployments.map((d) => (
                <tr key={d.id}>
                  <th scope="row">
                    <a href={`#/devices/${d.device_id}`}>{d.device_name}</a>
                  </th>
                  <td>v{d.version_number}</td>
                  <td>
                    <ReportedState deployment={d} />
                  </td>
                  <td>{d.desired_state}</td>
                  <td>{when(d.updated_at)}</td>
                  <td class="actions-cell">
                    {canEdit &&
                      offered(d).map((action) => (
                        <button
                          key={action}
                          class="small"
                          aria-label={`${ACTION_LABEL[action]} on ${d.device_name}`}
                          aria-busy={busy === d.id}
                          disabled={busy !== null}
                          onClick={() => run(d, action)}
                        >
                          {ACTION_LABEL[action]}
                        </button>
                      ))}
                    {canEdit && d.desired_state !== "removed" && (
                      <Confirm
                        text="Remove"
                        label={`Remove from ${d.device_name}`}
                        question={`Remove ${model.name} from ${d.device_name}?`}
                        yes={`Yes, remove from ${d.device_name}`}
                        disabled={busy !== null}
                        onConfirm={() => run(d, "remove")}
                      />
                    )}
                    <button class="secondary outline small" aria-label={`History on ${d.device_name}`} onClick={() => setHistoryOf(d)}>
                      History
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </article>
      {historyOf && <HistoryDialog model={model} deployment={historyOf} onClose={() => setHistoryOf(null)} />}
    </>
  );
}

function DeployForm(props: { model: Model; devices: Device[] | null; onDeployed: () => void }) {
  const { deployer } = useConsole();
  const versions = useVersions(props.model.id);
  const form = useRef<HTMLFormElement>(null);
  const { errors, failure, busy, submit } = useSubmit(form);
  const [versionId, setVersionId] = useState("");
  const [target, setTarget] = useState<Target>("devices");
  const [chosen, setChosen] = useState<string[]>([]);
  const [selector, setSelector] = useState("");
  const [done, setDone] = useState<string | null>(null);
  const version = versionId || versions.items?.[0]?.id || "";
  const parsed = parseSelector(selector);
  const ready = Boolean(version) && (target === "devices" ? chosen.length > 0 : parsed !== null);
  if (versions.error) return <ErrorNote error={versions.error} onRetry={versions.reload} notFound={NO_ACCESS} />;
  if (versions.items === null) return <Loading what="the versions" />;

  return (
    <article aria-labelledby="deploy-title">
      <h2 id="deploy-title">Deploy</h2>
      {versions.items.length === 0 ? (
        <p class="muted">No version to deploy yet: upload one under Version.</p>
      ) : (
        <form
          ref={form}
          onSubmit={(e) => {
            e.preventDefault();
            if (!ready) return;
            setDone(null);
            const body =
              target === "devices"
                ? { version_id: version, device_ids: chosen }
                : // The generated type cannot say "a non-empty mapping": the deployer checks it.
                  { version_id: version, selector: parsed as Record<string, never> };
            void submit(async () => {
              const { data } = await unwrap(deployer.POST("/v1/deployments", { body }));
              const number = versions.items?.find((v) => v.id === version)?.number;
              setDone(`Version ${number} asked of ${data.items.length} device${data.items.length === 1 ? "" : "s"}: ${data.items.map((d) => d.device_name).join(", ") || "none matched"}.`);
              setChosen([]);
              props.onDeployed();
            });
          }}
        >
          <Field label="Version" required error={errors.version_id}>
            {(a) => (
              <select {...a} value={version} onChange={(e) => setVersionId(e.currentTarget.value)}>
                {versions.items!.map((v) => (
                  <option key={v.id} value={v.id}>
                    v{v.number}
                    {v.title ? ` ${v.title}` : ""} ({when(v.created_at)})
                  </option>
                ))}
              </select>
            )}
          </Field>
          <DeviceTarget
            legend="Deploy to"
            name="target"
            target={target}
            setTarget={setTarget}
            devices={props.devices}
            chosen={chosen}
            setChosen={setChosen}
            selector={selector}
            setSelector={setSelector}
            errors={errors}
          />
          {failure ? <ErrorNote error={failure} /> : null}
          {done && <p role="status">{done}</p>}
          <div class="actions">
            <button type="submit" aria-busy={busy} disabled={busy || !ready}>
              Deploy
            </button>
            <a href={`#/rollouts/new/${props.model.id}`} class="button-link">
              Roll out in waves
            </a>
          </div>
        </form>
      )}
    </article>
  );
}

function HistoryDialog(props: { model: Model; deployment: Deployment; onClose: () => void }) {
  const { deployer } = useConsole();
  const dialog = useRef<HTMLDialogElement>(null);
  const entries = useList<DeploymentHistoryEntry>(
    async () =>
      (
        await unwrap(
          deployer.GET("/v1/deployments/{deployment_id}/history", {
            params: { path: { deployment_id: props.deployment.id }, query: { sort: "-recorded_at", limit: 100 } },
          }),
        )
      ).data.items,
    [deployer, props.deployment.id],
  );
  const title = `History of ${props.model.name} on ${props.deployment.device_name}`;
  return (
    <FormDialog id="deployment-history-title" title={title} dialog={dialog} onClose={props.onClose}>
      {entries.error ? (
        <ErrorNote error={entries.error} onRetry={entries.reload} />
      ) : entries.items === null ? (
        <Loading what="the history" />
      ) : (
        <table class="striped">
          <caption class="visually-hidden">{title}</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">State</th>
              <th scope="col">Action</th>
              <th scope="col">By</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody>
            {entries.items.map((e) => (
              <tr key={e.id}>
                <td>{when(e.occurred_at)}</td>
                <td>{e.state.replace("_", " ")}</td>
                <td>{e.action ?? "report"}</td>
                <td>{e.action ? e.actor : "the device"}</td>
                <td>
                  {e.message}
                  {e.log_tail.length > 0 && <pre class="log-tail">{e.log_tail.join("\n")}</pre>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <DialogFooter dialog={dialog} failure={null} busy={false} submit="" closeOnly />
    </FormDialog>
  );
}
