/**
 * The Device List and a device's Manage models, in the product documents' words: "Device List,
 * select a device, Manage Models: status, stop, start, delete". Actions are asked of the
 * deployer, which sends the command to the device; the row shows the desired state at once and
 * the device's reported state as it comes (the page follows it while anything is in motion).
 */
import { useEffect, useState } from "preact/hooks";

import { type Deployment, type Device, type DeviceStatus, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { DeviceTabs } from "./provisioning.tsx";
import { Confirm, ErrorNote, Loading, useDebounced, when } from "./ui.tsx";

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

/** The Device List: every device of the workspace, searchable, by status and label. */
export function DevicesList() {
  const { deployer } = useConsole();
  const [filters, setFilters] = useState({ name: "", status: "", label: "" });
  const settled = useDebounced(filters, 250);
  const [devices, setDevices] = useState<Device[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    setError(null);
    const query = {
      limit: 200,
      name: settled.name.trim() || undefined,
      status: (settled.status || undefined) as DeviceStatus | undefined,
      label: settled.label.includes("=") ? [settled.label.trim()] : undefined,
    };
    unwrap(deployer.GET("/v1/devices", { params: { query } })).then(({ data }) => setDevices(data.items), setError);
  }, [settled, deployer, attempt]);
  const set = (key: keyof typeof filters) => (e: { currentTarget: { value: string } }) =>
    setFilters({ ...filters, [key]: e.currentTarget.value });
  const filtered = Boolean(filters.name || filters.status || filters.label);
  return (
    <section aria-labelledby="devices-title">
      <div class="page-head">
        <h1 id="devices-title">Device List</h1>
      </div>
      <DeviceTabs current="list" />
      <form role="search" class="filters grid" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search devices
          <input type="search" value={filters.name} onInput={set("name")} />
        </label>
        <label>
          Status
          <select value={filters.status} onChange={set("status")}>
            <option value="">Any (not revoked)</option>
            <option value="online">Online</option>
            <option value="offline">Offline</option>
            <option value="revoked">Revoked</option>
          </select>
        </label>
        <label>
          Label
          <input value={filters.label} onInput={set("label")} placeholder="site=plant-1" />
        </label>
      </form>
      {error ? (
        <ErrorNote error={error} onRetry={() => setAttempt(attempt + 1)} />
      ) : devices === null ? (
        <Loading what="devices" />
      ) : devices.length === 0 ? (
        <p role="status" class="empty">
          {filtered ? "No devices match these filters." : "No devices in this workspace yet."}
        </p>
      ) : (
        <table class="striped">
          <caption class="visually-hidden">Devices</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Labels</th>
              <th scope="col">Last seen</th>
              <th scope="col">Agent</th>
            </tr>
          </thead>
          <tbody>
            {devices.map((d) => (
              <tr key={d.id}>
                <th scope="row">
                  <a href={`#/devices/${d.id}`}>{d.name}</a>
                </th>
                <td>
                  <StatusBadge status={d.status} />
                </td>
                <td>{labelsText(d.labels)}</td>
                <td>{d.last_seen_at ? when(d.last_seen_at) : "never"}</td>
                <td>{d.agent_version ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

// States the device is still moving through: the page asks again until they settle.
const MOVING = new Set(["pending", "downloading", "verifying", "building", "starting", "removing"]);

/** Return whether a deployment is still on its way to what was asked of it. */
export function inMotion(d: Deployment): boolean {
  return MOVING.has(d.state) || d.state !== d.desired_state;
}

/** The state a device reported for a deployment, with its message and any policy warning. */
export function ReportedState(props: { deployment: Deployment }) {
  const d = props.deployment;
  return (
    <>
      <span class={`badge state-${d.state}`}>{d.state.replace("_", " ")}</span>
      {d.state_message && <small class="muted"> {d.state_message}</small>}
      {d.policy_warning && <small class="warning"> {d.policy_warning}</small>}
    </>
  );
}

type Action = "stop" | "start" | "remove";
const ACTION_LABEL: Record<Action, string> = { stop: "Stop", start: "Start", remove: "Delete" };

/** A device's facts and its Manage models: status, stop, start and delete of each model. */
export function DevicePage(props: { id: string }) {
  const { deployer, canEdit } = useConsole();
  const [device, setDevice] = useState<Device | null>(null);
  const [deployments, setDeployments] = useState<Deployment[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);
  const path = { params: { path: { device_id: props.id } } };

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    async function load() {
      try {
        const [one, list] = await Promise.all([
          unwrap(deployer.GET("/v1/devices/{device_id}", path)),
          unwrap(deployer.GET("/v1/devices/{device_id}/deployments", { params: { ...path.params, query: { limit: 200 } } })),
        ]);
        if (stopped) return;
        setDevice(one.data);
        setDeployments(list.data.items);
        setError(null);
        // Follow a device that is online and still carrying out a command (an offline one
        // reports nothing until it is back: no asking every 2 s meanwhile).
        const moving = list.data.items.some(inMotion);
        if (one.data.status === "online" && moving) {
          timer = setTimeout(load, 2000);
        }
      } catch (e) {
        if (!stopped) setError(e);
      }
    }
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [props.id, deployer, attempt]);

  async function act(deployment: Deployment, action: Action) {
    setBusy(deployment.id);
    setActionError(null);
    const target = { params: { path: { deployment_id: deployment.id } } };
    try {
      const { data } = await unwrap(
        action === "remove"
          ? deployer.DELETE("/v1/deployments/{deployment_id}", target)
          : action === "stop"
            ? deployer.POST("/v1/deployments/{deployment_id}/stop", target)
            : deployer.POST("/v1/deployments/{deployment_id}/start", target),
      );
      setDeployments((list) => (list ?? []).map((d) => (d.id === data.id ? data : d)));
      setAttempt((n) => n + 1);
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(null);
    }
  }

  if (error) return <ErrorNote error={error} onRetry={() => setAttempt(attempt + 1)} />;
  if (!device || deployments === null) return <Loading what="the device" />;
  return (
    <section aria-labelledby="device-title">
      <p>
        <a href="#/devices">← Device List</a>
      </p>
      <div class="page-head">
        <h1 id="device-title">{device.name}</h1>
        <StatusBadge status={device.status} />
      </div>
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
      {actionError ? <ErrorNote error={actionError} /> : null}
      {deployments.length === 0 ? (
        <p role="status" class="empty">
          No models on this device.
        </p>
      ) : (
        <table class="striped" aria-labelledby="manage-models">
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Version</th>
              <th scope="col">Status</th>
              <th scope="col">Asked for</th>
              <th scope="col">Updated</th>
              {canEdit && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {deployments.map((d) => {
              const name = d.model_name ?? d.model_id.slice(0, 8);
              const offered: Action[] =
                d.desired_state === "removed" ? [] : d.desired_state === "running" ? ["stop", "remove"] : ["start", "remove"];
              return (
                <tr key={d.id}>
                  <th scope="row">{name}</th>
                  <td>v{d.version_number}</td>
                  <td>
                    <ReportedState deployment={d} />
                  </td>
                  <td>{d.desired_state}</td>
                  <td>{when(d.updated_at)}</td>
                  {canEdit && (
                    <td class="actions-cell">
                      {offered
                        .filter((action) => action !== "remove")
                        .map((action) => (
                          <button
                            key={action}
                            class="small"
                            aria-label={`${ACTION_LABEL[action]} ${name}`}
                            aria-busy={busy === d.id}
                            disabled={busy !== null}
                            onClick={() => act(d, action)}
                          >
                            {ACTION_LABEL[action]}
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
          </tbody>
        </table>
      )}
    </section>
  );
}
