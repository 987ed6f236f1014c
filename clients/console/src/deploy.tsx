/**
 * An AI model's Deploy section: choose a version, send it to chosen devices or to every device
 * with a label, then follow this model's deployments as the devices report (start, stop,
 * restart, rollback, remove, and each one's history).
 */
import { useRef, useState } from "preact/hooks";

import { type Deployment, type DeploymentHistoryEntry, type Device, type Model, itemsOf, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { actOn, DeploymentCells, type DeploymentAction, followUp, labelsText, useAllDevices } from "./devices.tsx";
import { Confirm, DataTable, DialogFooter, ErrorNote, Field, FormDialog, Loading, RowLink, Table, useAction, useItems, usePolled, useSubmit, when } from "./ui.tsx";
import { NO_ACCESS, useVersions, VersionField } from "./versions.tsx";

type Action = Exclude<DeploymentAction, "remove">;
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

/** Where a deployment or a rollout goes, as the person chooses it (see DeviceTarget). */
export function useDeviceTarget(initial: Target) {
  const [target, setTarget] = useState<Target>(initial);
  const [chosen, setChosen] = useState<string[]>([]);
  const [selector, setSelector] = useState("");
  const parsed = parseSelector(selector);
  return {
    choice: { target, setTarget, chosen, setChosen, selector, setSelector },
    ready: target === "devices" ? chosen.length > 0 : parsed !== null,
    /** The request body's part that names the devices. */
    body: () =>
      target === "devices"
        ? { device_ids: chosen }
        : // The generated type cannot say "a non-empty mapping": the deployer checks it.
          { selector: parsed as Record<string, never> },
  };
}

/** Where a deployment or a rollout goes: chosen devices, or every device with a label. */
export function DeviceTarget(props: {
  legend: string;
  name: string;
  choice: ReturnType<typeof useDeviceTarget>["choice"];
  devices: Device[] | null;
  errors: Record<string, string>;
  selectorFirst?: boolean;
}) {
  const { devices, errors } = props;
  const { target, setTarget, chosen, setChosen, selector } = props.choice;
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
          {(a) => <input {...a} value={selector} onInput={(e) => props.choice.setSelector(e.currentTarget.value)} placeholder="site=berlin" />}
        </Field>
      )}
    </>
  );
}

export function DeployPanel(props: { model: Model }) {
  const { deployer, canEdit } = useConsole();
  const model = props.model;
  const devices = useAllDevices();
  const action = useAction();
  const [historyOf, setHistoryOf] = useState<Deployment | null>(null);
  const online = new Set((devices.items ?? []).filter((d) => d.status === "online").map((d) => d.id));
  const polled = usePolled(
    () =>
      itemsOf(
        deployer.GET("/v1/models/{model_id}/deployments", {
          params: { path: { model_id: model.id }, query: { limit: 200, sort: "-updated_at" } },
        }),
      ),
    (items) => followUp(items, (id) => online.has(id)),
    [model.id, deployer, devices.items],
  );
  const deployments = { items: polled.data, error: polled.error, reload: polled.reload };

  function run(d: Deployment, what: DeploymentAction) {
    return action.run(d.id, async () => {
      const data = await actOn(deployer, d, what);
      polled.setData((list) => (list ?? []).map((x) => (x.id === data.id ? data : x)));
      polled.reload();
    });
  }

  const busy = action.busy;
  return (
    <>
      {canEdit && <DeployForm model={model} devices={devices.items} onDeployed={polled.reload} />}
      <article aria-labelledby="deployments-title">
        <h2 id="deployments-title">Deployments</h2>
        <DataTable
          actionError={action.error}
          what="the deployments"
          list={deployments}
          empty="This AI model is on no device yet."
          notFound={NO_ACCESS}
          labelledBy="deployments-title"
          columns={["Device", "Version", "Status", "Asked for", "Updated", "Actions"]}
          row={(d) => (
            <tr key={d.id}>
              <RowLink href={`#/devices/${d.device_id}`}>{d.device_name}</RowLink>
              <DeploymentCells deployment={d} />
              <td class="actions-cell">
                {canEdit &&
                  offered(d).map((a) => (
                    <button
                      key={a}
                      class="small"
                      aria-label={`${ACTION_LABEL[a]} on ${d.device_name}`}
                      aria-busy={busy === d.id}
                      disabled={busy !== null}
                      onClick={() => run(d, a)}
                    >
                      {ACTION_LABEL[a]}
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
          )}
        />
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
  const target = useDeviceTarget("devices");
  const [done, setDone] = useState<string | null>(null);
  const version = versionId || versions.items?.[0]?.id || "";
  const ready = Boolean(version) && target.ready;
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
            void submit(async () => {
              const { data } = await unwrap(deployer.POST("/v1/deployments", { body: { version_id: version, ...target.body() } }));
              const number = versions.items?.find((v) => v.id === version)?.number;
              setDone(`Version ${number} asked of ${data.items.length} device${data.items.length === 1 ? "" : "s"}: ${data.items.map((d) => d.device_name).join(", ") || "none matched"}.`);
              target.choice.setChosen([]);
              props.onDeployed();
            });
          }}
        >
          <VersionField versions={versions.items} value={version} onChange={setVersionId} error={errors.version_id} />
          <DeviceTarget legend="Deploy to" name="target" choice={target.choice} devices={props.devices} errors={errors} />
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
  const entries = useItems<DeploymentHistoryEntry>(
    () =>
      deployer.GET("/v1/deployments/{deployment_id}/history", {
        params: { path: { deployment_id: props.deployment.id }, query: { sort: "-recorded_at", limit: 100 } },
      }),
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
        <Table caption={title} columns={["When", "State", "Action", "By", "Message"]}>
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
        </Table>
      )}
      <DialogFooter dialog={dialog} failure={null} busy={false} submit="" closeOnly />
    </FormDialog>
  );
}
