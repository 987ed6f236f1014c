/**
 * The Device List and a device's Manage models, in the product documents' words: "Device List,
 * select a device, Manage Models: status, stop, start, delete". Actions are asked of the
 * deployer, which sends the command to the device; the row shows the desired state at once and
 * the device's reported state as it comes (the page follows it while anything is in motion).
 */
import { useState } from "preact/hooks";

import { type Deployer_, type Deployment, type Device, type DeviceStatus, itemsOf, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { DeviceTabs } from "./provisioning.tsx";
import { Choice, Confirm, DataTable, ErrorNote, Loading, Page, RowLink, Table, useAction, useDebounced, useItems, useList, usePolled, when } from "./ui.tsx";

const STATUS_LABEL: Record<DeviceStatus, string> = {
  online: "Online",
  offline: "Offline",
  revoked: "Revoked",
};

function StatusBadge(props: { status: DeviceStatus }) {
  return <span class={`badge device-${props.status}`}>{STATUS_LABEL[props.status]}</span>;
}

export function labelsText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

/** Return every device of the workspace (the first 200), for a form that chooses some. */
export function useAllDevices() {
  const { deployer } = useConsole();
  return useItems<Device>(
    () => deployer.GET("/v1/devices", { params: { query: { limit: 200 } } }),
    [deployer],
  );
}

/** The Device List: every device of the workspace, searchable, by status and label. */
export function DevicesList() {
  const { deployer } = useConsole();
  const [filters, setFilters] = useState({ name: "", status: "", label: "" });
  const settled = useDebounced(filters, 250);
  const devices = useList<Device>(async () => {
    const query = {
      limit: 200,
      name: settled.name.trim() || undefined,
      status: (settled.status || undefined) as DeviceStatus | undefined,
      label: settled.label.includes("=") ? [settled.label.trim()] : undefined,
    };
    return itemsOf(deployer.GET("/v1/devices", { params: { query } }));
  }, [settled, deployer]);
  const set = (key: keyof typeof filters) => (e: { currentTarget: { value: string } }) =>
    setFilters({ ...filters, [key]: e.currentTarget.value });
  const filtered = Boolean(filters.name || filters.status || filters.label);
  return (
    <Page id="devices-title" title="Device List">
      <DeviceTabs current="list" />
      <form role="search" class="filters grid" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search devices
          <input type="search" value={filters.name} onInput={set("name")} />
        </label>
        <Choice
          label="Status"
          value={filters.status}
          onChange={(status) => setFilters({ ...filters, status })}
          choices={[["", "Any (not revoked)"], ...Object.entries(STATUS_LABEL)]}
        />
        <label>
          Label
          <input value={filters.label} onInput={set("label")} placeholder="site=plant-1" />
        </label>
      </form>
      <DataTable
        what="devices"
        list={devices}
        empty={filtered ? "No devices match these filters." : "No devices in this workspace yet."}
        caption="Devices"
        columns={["Name", "Status", "Labels", "Last seen", "Agent"]}
        row={(d) => (
          <tr key={d.id}>
            <RowLink href={`#/devices/${d.id}`}>{d.name}</RowLink>
            <td>
              <StatusBadge status={d.status} />
            </td>
            <td>{labelsText(d.labels)}</td>
            <td>{d.last_seen_at ? when(d.last_seen_at) : "never"}</td>
            <td>{d.agent_version ?? "—"}</td>
          </tr>
        )}
      />
    </Page>
  );
}

// States the device is still moving through: the page asks again until they settle.
const MOVING = new Set(["pending", "downloading", "verifying", "building", "starting", "removing"]);

/** Return whether a deployment is still on its way to what was asked of it. */
export function inMotion(d: Deployment): boolean {
  return MOVING.has(d.state) || d.state !== d.desired_state;
}

/**
 * A deployment's cells after its first: the version, the state the device reported (with its
 * message and any policy warning), what was asked of it, and when it changed.
 */
export function DeploymentCells(props: { deployment: Deployment }) {
  const d = props.deployment;
  return (
    <>
      <td>v{d.version_number}</td>
      <td>
        <span class={`badge state-${d.state}`}>{d.state.replace("_", " ")}</span>
        {d.state_message && <small class="muted"> {d.state_message}</small>}
        {d.policy_warning && <small class="warning"> {d.policy_warning}</small>}
      </td>
      <td>{d.desired_state}</td>
      <td>{when(d.updated_at)}</td>
    </>
  );
}

export type DeploymentAction = "start" | "stop" | "restart" | "rollback" | "remove";

/** Ask the deployer to carry out `action` on a deployment; return the deployment as it now stands. */
export async function actOn(deployer: Deployer_, d: Deployment, action: DeploymentAction): Promise<Deployment> {
  const target = { params: { path: { deployment_id: d.id } } };
  const call =
    action === "remove"
      ? deployer.DELETE("/v1/deployments/{deployment_id}", target)
      : deployer.POST(`/v1/deployments/{deployment_id}/${action}`, target);
  return (await unwrap(call)).data;
}

/** Return whether to ask about `deployments` again in 2 s: something in motion on an online device. */
export function followUp(deployments: Deployment[], online: (deviceId: string) => boolean): number | null {
  // An offline device reports nothing until it is back: no asking every 2 s meanwhile.
  return deployments.some((d) => inMotion(d) && online(d.device_id)) ? 2000 : null;
}

type Action = "stop" | "start" | "remove";
const ACTION_LABEL: Record<Action, string> = { stop: "Stop", start: "Start", remove: "Delete" };

/** A device's facts and its Manage models: status, stop, start and delete of each model. */
export function DevicePage(props: { id: string }) {
  const { deployer, canEdit } = useConsole();
  const action = useAction();
  const path = { params: { path: { device_id: props.id } } };
  const polled = usePolled(
    async () => {
      const [one, list] = await Promise.all([
        unwrap(deployer.GET("/v1/devices/{device_id}", path)),
        unwrap(deployer.GET("/v1/devices/{device_id}/deployments", { params: { ...path.params, query: { limit: 200 } } })),
      ]);
      return { device: one.data, deployments: list.data.items };
    },
    // Follow a device that is online and still carrying out a command.
    ({ device, deployments }) => followUp(deployments, () => device.status === "online"),
    [props.id, deployer],
  );

  function act(deployment: Deployment, what: Action) {
    return action.run(deployment.id, async () => {
      const data = await actOn(deployer, deployment, what);
      polled.setData((now) => now && { ...now, deployments: now.deployments.map((d) => (d.id === data.id ? data : d)) });
      polled.reload();
    });
  }

  if (polled.error) return <ErrorNote error={polled.error} onRetry={polled.reload} />;
  if (!polled.data) return <Loading what="the device" />;
  const { device, deployments } = polled.data;
  const busy = action.busy;
  return (
    <Page id="device-title" title={device.name} back={["#/devices", "Device List"]} aside={<StatusBadge status={device.status} />}>
      <dl>
        <dt>Labels</dt>
        <dd>{labelsText(device.labels) || "none"}</dd>
        <dt>Last seen</dt>
        <dd>{device.last_seen_at ? when(device.last_seen_at) : "never"}</dd>
        <dt>Agent</dt>
        <dd>{device.agent_version ?? "—"}</dd>
        <dt>Reached at</dt>
        <dd>{device.advertise_host ? `${device.advertise_host}${device.ingress_port ? `:${device.ingress_port}` : ""}` : "—"}</dd>
      </dl>
      <h2 id="manage-models">Manage models</h2>
      {action.error ? <ErrorNote error={action.error} /> : null}
      {deployments.length === 0 ? (
        <p role="status" class="empty">
          No models on this device.
        </p>
      ) : (
        <Table labelledBy="manage-models" columns={["Model", "Version", "Status", "Asked for", "Updated", canEdit && "Actions"]}>
          {deployments.map((d) => {
            const name = d.model_name ?? d.model_id.slice(0, 8);
            const offered: Action[] =
              d.desired_state === "removed" ? [] : d.desired_state === "running" ? ["stop", "remove"] : ["start", "remove"];
            return (
              <tr key={d.id}>
                <th scope="row">{name}</th>
                <DeploymentCells deployment={d} />
                {canEdit && (
                  <td class="actions-cell">
                    {offered
                      .filter((a) => a !== "remove")
                      .map((a) => (
                        <button
                          key={a}
                          class="small"
                          aria-label={`${ACTION_LABEL[a]} ${name}`}
                          aria-busy={busy === d.id}
                          disabled={busy !== null}
                          onClick={() => act(d, a)}
                        >
                          {ACTION_LABEL[a]}
                        </button>
                      ))}{" "}
                    {offered.includes("remove") && (
                      <Confirm
                        text={ACTION_LABEL.remove}
                        label={`Delete ${name}`}
                        question={`Delete ${name} from ${device.name}?`}
                        yes={`Yes, delete ${name} from this device`}
                        disabled={busy !== null}
                        onConfirm={() => act(d, "remove")}
                      />
                    )}
                  </td>
                )}
              </tr>
            );
          })}
        </Table>
      )}
    </Page>
  );
}
