/**
 * Rollouts: a version sent to devices (chosen ones or a label selector's) wave by wave, the
 * canary first, each wave passing when its devices run healthy for the soak time. The list, the
 * form (reached from an AI model's Deploy section), and a rollout's page following its waves and
 * devices live, with Pause, Resume, Abort and its history.
 */
import { useEffect, useRef, useState } from "preact/hooks";

import { ApiError, type RolloutState, type RolloutSummary, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { DeviceTarget, parseSelector, useDeviceTarget } from "./deploy.tsx";
import { useAllDevices } from "./devices.tsx";
import { go } from "./router.ts";
import { Choice, Confirm, DataTable, ErrorNote, Field, Loading, Options, RowLink, Table, useAction, useItems, usePolled, useSubmit, when } from "./ui.tsx";
import { NO_ACCESS, useVersions, VersionField } from "./versions.tsx";

const STATE_LABEL: Record<RolloutState, string> = {
  running: "Running",
  paused: "Paused",
  aborting: "Aborting",
  completed: "Completed",
  aborted: "Aborted",
};
/** A rollout still moving: its page asks again every 2 s. */
const MOVING: RolloutState[] = ["running", "paused", "aborting"];

export function RolloutBadge(props: { state: RolloutState }) {
  return <span class={`badge rollout-${props.state}`}>{STATE_LABEL[props.state]}</span>;
}

/** Return the names of the AI models and the numbers of the versions `rollouts` name. */
function useNames(rollouts: { model_id: string; version_id: string }[] | null) {
  const { registry, deployer } = useConsole();
  const [names, setNames] = useState<Record<string, string>>({});
  const key = (rollouts ?? []).map((r) => `${r.model_id}/${r.version_id}`).join(",");
  useEffect(() => {
    let stopped = false;
    const ids = new Set<string>();
    for (const r of rollouts ?? []) ids.add(r.model_id).add(r.version_id);
    const missing = [...ids].filter((id) => !(id in names));
    if (!missing.length) return;
    void (async () => {
      const found: Record<string, string> = {};
      const models = new Set((rollouts ?? []).map((r) => r.model_id));
      await Promise.all(
        missing.map(async (id) => {
          try {
            if (models.has(id)) {
              const { data } = await unwrap(registry.GET("/v1/models/{model_id}", { params: { path: { model_id: id } } }));
              found[id] = data.name;
            } else {
              const { data } = await unwrap(deployer.GET("/v1/versions/{version_id}", { params: { path: { version_id: id } } }));
              found[id] = `v${data.number}`;
            }
          } catch {
            found[id] = models.has(id) ? "an AI model you cannot see" : "a version";
          }
        }),
      );
      if (!stopped) setNames((known) => ({ ...known, ...found }));
    })();
    return () => {
      stopped = true;
    };
  }, [key]);
  return names;
}

export function RolloutsList() {
  const { deployer } = useConsole();
  const [state, setState] = useState<RolloutState | "">("");
  const list = useItems<RolloutSummary>(
    () =>
      deployer.GET("/v1/rollouts", {
        params: { query: { limit: 100, sort: "-created_at", ...(state ? { state } : {}) } },
      }),
    [deployer, state],
  );
  const names = useNames(list.items);
  return (
    <section aria-labelledby="rollouts-title">
      <div class="page-head">
        <h1 id="rollouts-title">Rollouts</h1>
      </div>
      <p class="muted">
        A rollout sends a version to devices in waves, the canary first, and stops (returning the
        devices to what they ran) when too many fail. Start one from an AI model's Deploy section.
      </p>
      <form class="filters" role="search" aria-label="Filter rollouts" onSubmit={(e) => e.preventDefault()}>
        <Choice
          label="State"
          value={state}
          onChange={(value) => setState(value as RolloutState | "")}
          choices={[["", "Any"], ...Object.entries(STATE_LABEL)]}
        />
      </form>
      <DataTable
        what="the rollouts"
        list={list}
        empty={state ? "No rollouts in this state." : "No rollouts in this workspace yet."}
        caption="Rollouts, newest first"
        columns={["Rollout", "State", "Wave", "Started by", "Started", "Updated"]}
        row={(r) => (
          <tr key={r.id}>
            <th scope="row">
              <a
                href={`#/rollouts/${r.id}`}
                aria-label={`${names[r.model_id] ?? "…"} ${names[r.version_id] ?? ""}, started ${when(r.created_at)}`}
              >
                {names[r.model_id] ?? "…"} {names[r.version_id] ?? ""}
              </a>
            </th>
            <td>
              <RolloutBadge state={r.state} />
              {r.reason && <small class="block muted">{r.reason}</small>}
            </td>
            <td>
              {Math.min(r.current_wave + 1, r.wave_count)} of {r.wave_count}
            </td>
            <td>{r.created_by}</td>
            <td>{when(r.created_at)}</td>
            <td>{when(r.updated_at)}</td>
          </tr>
        )}
      />
    </section>
  );
}

type WaveKind = "count" | "percent" | "selector";
type WaveRow = { kind: WaveKind; value: string };
const WAVE_KIND: Record<WaveKind, string> = {
  count: "Devices",
  percent: "Percent of the targets",
  selector: "Devices with a label",
};

/** Start a rollout of one of `modelId`'s versions. */
export function RolloutForm(props: { modelId: string }) {
  const { deployer, registry, canEdit } = useConsole();
  const versions = useVersions(props.modelId);
  const devices = useAllDevices();
  const [modelName, setModelName] = useState<string | null>(null);
  useEffect(() => {
    unwrap(registry.GET("/v1/models/{model_id}", { params: { path: { model_id: props.modelId } } })).then(
      ({ data }) => setModelName(data.name),
      () => setModelName(""),
    );
  }, [props.modelId, registry]);
  const form = useRef<HTMLFormElement>(null);
  const { errors, failure, busy, submit } = useSubmit(form);
  const [versionId, setVersionId] = useState("");
  const target = useDeviceTarget("selector");
  const [waves, setWaves] = useState<WaveRow[]>([
    { kind: "count", value: "1" },
    { kind: "percent", value: "100" },
  ]);
  const [soak, setSoak] = useState("60");
  const [offline, setOffline] = useState("300");
  const [failurePercent, setFailurePercent] = useState("0");
  const [minDevices, setMinDevices] = useState("1");
  const [waveTimeout, setWaveTimeout] = useState("900");
  const version = versionId || versions.items?.[0]?.id || "";
  const ready = Boolean(version) && target.ready && waves.length > 0;
  const back = (
    <p>
      <a href={`#/models/${props.modelId}/deploy`}>← {modelName || "the AI model"}: Deploy</a>
    </p>
  );
  if (!canEdit) {
    return (
      <section>
        {back}
        <p role="alert">Starting a rollout needs the editor role in this workspace.</p>
      </section>
    );
  }
  if (versions.error) return <ErrorNote error={versions.error} onRetry={versions.reload} notFound={NO_ACCESS} />;
  if (versions.items === null) return <Loading what="the versions" />;

  function waveBody(row: WaveRow) {
    if (row.kind === "selector") return { selector: parseSelector(row.value) ?? {} };
    return { [row.kind]: Number(row.value) };
  }

  return (
    <section aria-labelledby="rollout-form-title">
      {back}
      <h1 id="rollout-form-title">Roll out {modelName ?? ""} in waves</h1>
      {versions.items.length === 0 ? (
        <p class="muted">No version to roll out yet: upload one under Version.</p>
      ) : (
        <form
          ref={form}
          onSubmit={(e) => {
            e.preventDefault();
            if (!ready) return;
            const body = {
              ...target.body(),
              version_id: version,
              waves: waves.map(waveBody),
              soak_s: Number(soak),
              offline_timeout_s: Number(offline),
              abort: {
                failure_percent: Number(failurePercent),
                min_devices: Number(minDevices),
                wave_timeout_s: Number(waveTimeout),
              },
            };
            void submit(async () => {
              const { data } = await unwrap(deployer.POST("/v1/rollouts", { body }));
              go(`/rollouts/${data.id}`);
            });
          }}
        >
          <div class="grid">
            <article>
              <h2>What and where</h2>
              <VersionField versions={versions.items} value={version} onChange={setVersionId} error={errors.version_id} />
              <DeviceTarget
                legend="Roll out to"
                name="rollout-target"
                choice={target.choice}
                devices={devices.items}
                errors={errors}
                selectorFirst
              />
            </article>
            <article>
              <h2>When to go on, when to stop</h2>
              <Field label="Soak time (seconds)" error={errors.soak_s} hint="How long a wave's devices must run healthy before the next wave starts.">
                {(a) => <input {...a} type="number" min="0" value={soak} onInput={(e) => setSoak(e.currentTarget.value)} />}
              </Field>
              <Field label="Offline after (seconds)" error={errors.offline_timeout_s} hint="A device silent this long is skipped; it never holds a wave.">
                {(a) => <input {...a} type="number" min="1" value={offline} onInput={(e) => setOffline(e.currentTarget.value)} />}
              </Field>
              <Field label="Abort when failed devices exceed (%)" error={errors.abort} hint="0: the first failed device stops the rollout.">
                {(a) => <input {...a} type="number" min="0" max="100" value={failurePercent} onInput={(e) => setFailurePercent(e.currentTarget.value)} />}
              </Field>
              <div class="grid">
                <Field label="…once this many were judged" hint="Devices healthy or failed.">
                  {(a) => <input {...a} type="number" min="1" value={minDevices} onInput={(e) => setMinDevices(e.currentTarget.value)} />}
                </Field>
                <Field label="Wave timeout (seconds)" hint="A wave not passed by then aborts.">
                  {(a) => <input {...a} type="number" min="1" value={waveTimeout} onInput={(e) => setWaveTimeout(e.currentTarget.value)} />}
                </Field>
              </div>
            </article>
          </div>
          <article>
            <h2 id="waves-title">Waves</h2>
            <p class="muted">
              The first wave is the canary. Devices left after the last wave join it.
            </p>
            <ol class="waves" aria-labelledby="waves-title">
              {waves.map((row, index) => {
                const name = index === 0 ? "Wave 1 (canary)" : `Wave ${index + 1}`;
                const set = (next: Partial<WaveRow>) => setWaves(waves.map((w, i) => (i === index ? { ...w, ...next } : w)));
                // What the deployer said of this wave, said under it (e.g. a label matching no device).
                const error = errors[`waves.${index}`];
                const invalid = error ? { "aria-invalid": "true" as const, "aria-describedby": `wave-${index}-error` } : {};
                return (
                  <li key={index} role="group" aria-label={name}>
                    <strong>{name}</strong>
                    <label>
                      Size by
                      <select
                        aria-label={`${name} size by`}
                        value={row.kind}
                        onChange={(e) => {
                          const kind = e.currentTarget.value as WaveKind;
                          set({ kind, value: kind === "selector" ? "" : kind === "percent" ? "50" : "1" });
                        }}
                      >
                        <Options choices={Object.entries(WAVE_KIND)} />
                      </select>
                    </label>
                    <label>
                      {row.kind === "selector" ? "Label" : row.kind === "percent" ? "Percent" : "Count"}
                      {row.kind === "selector" ? (
                        <input
                          {...invalid}
                          aria-label={`${name} label`}
                          value={row.value}
                          placeholder="ring=canary"
                          onInput={(e) => set({ value: e.currentTarget.value })}
                        />
                      ) : (
                        <input
                          {...invalid}
                          aria-label={`${name} ${row.kind === "percent" ? "percent" : "count"}`}
                          type="number"
                          min="1"
                          max={row.kind === "percent" ? "100" : undefined}
                          value={row.value}
                          onInput={(e) => set({ value: e.currentTarget.value })}
                        />
                      )}
                    </label>
                    <button
                      type="button"
                      class="secondary outline small"
                      aria-label={`Remove ${name.toLowerCase()}`}
                      disabled={waves.length < 2}
                      onClick={() => setWaves(waves.filter((_, i) => i !== index))}
                    >
                      Remove
                    </button>
                    {error && (
                      <small id={`wave-${index}-error`} class="field-error" role="alert">
                        {error}
                      </small>
                    )}
                  </li>
                );
              })}
            </ol>
            {errors.waves && !waves.some((_, i) => errors[`waves.${i}`]) && (
              <small class="field-error" role="alert">
                {errors.waves}
              </small>
            )}
            <button type="button" class="secondary small" onClick={() => setWaves([...waves, { kind: "percent", value: "100" }])}>
              Add a wave
            </button>
          </article>
          {failure ? <ErrorNote error={failure} /> : null}
          {busyDevices(failure).length > 0 && (
            <ul aria-label="Rollouts holding these devices">
              {busyDevices(failure).map((d) => (
                <li key={d.device_id}>
                  {d.device_name}: <a href={`#/rollouts/${d.rollout_id}`}>its rollout</a>
                </li>
              ))}
            </ul>
          )}
          <button type="submit" aria-busy={busy} disabled={busy || !ready}>
            Start the rollout
          </button>
        </form>
      )}
    </section>
  );
}

/** Return the devices a 409 names as already in an unfinished rollout. */
function busyDevices(error: unknown): { device_id: string; device_name: string; rollout_id: string }[] {
  if (!(error instanceof ApiError) || error.status !== 409) return [];
  const devices = (error.problem as { devices?: unknown } | null)?.devices;
  return Array.isArray(devices)
    ? devices.filter((d): d is { device_id: string; device_name: string; rollout_id: string } => typeof d?.rollout_id === "string")
    : [];
}

const DEVICE_STATE: Record<string, string> = {
  waiting: "waiting",
  updating: "updating",
  healthy: "healthy",
  failed: "failed",
  skipped: "skipped",
  rolled_back: "rolled back",
  removed: "removed",
};

/** A rollout: its waves and devices as they fare (asked again every 2 s while it moves). */
export function RolloutPage(props: { id: string }) {
  const { deployer, canEdit } = useConsole();
  const action = useAction();
  const polled = usePolled(
    async () => {
      const path = { params: { path: { rollout_id: props.id } } };
      const [one, history] = await Promise.all([
        unwrap(deployer.GET("/v1/rollouts/{rollout_id}", path)),
        unwrap(
          deployer.GET("/v1/rollouts/{rollout_id}/history", {
            params: { path: { rollout_id: props.id }, query: { sort: "-recorded_at", limit: 200 } },
          }),
        ),
      ]);
      return { rollout: one.data, events: history.data.items };
    },
    ({ rollout }) => (MOVING.includes(rollout.state) ? 2000 : null),
    [props.id, deployer],
    5000,
  );
  const rollout = polled.data?.rollout ?? null;
  const names = useNames(rollout ? [rollout] : null);

  function act(what: "pause" | "resume" | "abort") {
    return action.run(what, async () => {
      const { data } = await unwrap(deployer.POST(`/v1/rollouts/{rollout_id}/${what}`, { params: { path: { rollout_id: props.id } } }));
      polled.setData((now) => now && { ...now, rollout: data });
      polled.reload();
    });
  }

  const back = (
    <p>
      <a href="#/rollouts">← Rollouts</a>
    </p>
  );
  if (!polled.data) {
    return (
      <section>
        {back}
        {polled.error ? (
          <ErrorNote error={polled.error} onRetry={polled.reload} notFound="This rollout does not exist in this workspace." />
        ) : (
          <Loading what="the rollout" />
        )}
      </section>
    );
  }
  const { rollout: r, events } = polled.data;
  const title = `Rollout of ${names[r.model_id] ?? "…"} ${names[r.version_id] ?? ""}`;
  const moving = MOVING.includes(r.state);
  const stopped = r.state === "aborted" || r.state === "aborting";
  const busy = action.busy !== null;
  // The deployer counts waves from 0; people from 1 (the canary is wave 1).
  const wave = Math.min(r.current_wave + 1, r.waves.length);
  const deviceNames = new Map(r.devices.map((d) => [d.device_id, d.device_name]));
  return (
    <section aria-labelledby="rollout-title">
      {back}
      <div class="page-head">
        <h1 id="rollout-title">{title}</h1>
        <RolloutBadge state={r.state} />
      </div>
      <p role="status" aria-live="polite" class="rollout-status">
        {r.state === "completed"
          ? `Completed ${when(r.finished_at)}: every wave passed.`
          : r.state === "aborted"
            ? `Aborted ${when(r.finished_at)}.`
            : r.state === "paused"
              ? `Paused at wave ${wave} of ${r.waves.length}.`
              : r.state === "aborting"
                ? "Aborting: returning updated devices to the version they ran."
                : `Running wave ${wave} of ${r.waves.length}.`}
        {r.reason && <> Reason: {r.reason}</>}
      </p>
      {polled.error && moving ? <ErrorNote error={polled.error} /> : null}
      {canEdit && moving && (
        <div class="actions rollout-actions">
          {r.state === "running" && (
            <button class="secondary" aria-busy={action.busy === "pause"} disabled={busy} onClick={() => act("pause")}>
              Pause
            </button>
          )}
          {r.state === "paused" && (
            <button aria-busy={action.busy === "resume"} disabled={busy} onClick={() => act("resume")}>
              Resume
            </button>
          )}
          {r.state !== "aborting" && (
            <Confirm
              text="Abort"
              label="Abort the rollout"
              question="Abort this rollout?"
              yes="Yes, abort and return the devices"
              disabled={busy}
              danger
              onConfirm={() => act("abort")}
            />
          )}
        </div>
      )}
      {action.error ? <ErrorNote error={action.error} /> : null}
      <dl class="rollout-facts">
        <dt>Started</dt>
        <dd>
          {when(r.created_at)} by {r.created_by}
        </dd>
        <dt>Soak time</dt>
        <dd>{r.soak_s}s healthy per wave</dd>
        <dt>Abort rule</dt>
        <dd>
          more than {r.abort.failure_percent ?? 0}% failed after {r.abort.min_devices ?? 1} judged, or a wave not passed
          in {r.abort.wave_timeout_s ?? 900}s
        </dd>
        <dt>Offline after</dt>
        <dd>{r.offline_timeout_s}s</dd>
      </dl>
      <article aria-labelledby="waves-title">
        <h2 id="waves-title">Waves</h2>
        <Table labelledBy="waves-title" columns={["Wave", "State", "Devices", "Progress"]}>
          {r.waves.map((w) => {
            const healthy = w.counts.healthy ?? 0;
            const done = healthy + (w.counts.skipped ?? 0) + (w.counts.failed ?? 0);
            const label = w.index === 0 ? "Wave 1 (canary)" : `Wave ${w.index + 1}`;
            // A wave the abort came before: it never starts (not "waiting" for anything).
            const state = stopped && w.state === "waiting" ? "not started" : w.state.replace("_", " ");
            return (
              <tr key={w.index}>
                <th scope="row">{label}</th>
                <td>{state}</td>
                <td>{w.size}</td>
                <td>
                  <progress max={w.size} value={done} aria-label={`${label}: ${done} of ${w.size} devices done`} />
                  <small class="block">
                    {Object.entries(w.counts)
                      .filter(([, n]) => n > 0)
                      .map(([s, n]) => `${n} ${DEVICE_STATE[s] ?? s}`)
                      .join(", ") || "none yet"}
                  </small>
                </td>
              </tr>
            );
          })}
        </Table>
      </article>
      <article aria-labelledby="rollout-devices-title">
        <h2 id="rollout-devices-title">Devices</h2>
        <Table labelledBy="rollout-devices-title" columns={["Device", "Wave", "State", "Deployment", "Why"]}>
          {r.devices.map((d) => (
            <tr key={d.device_id}>
              <RowLink href={`#/devices/${d.device_id}`}>{d.device_name}</RowLink>
              <td>{d.wave + 1}</td>
              <td>
                <span class={`badge device-${d.state}`}>{DEVICE_STATE[d.state] ?? d.state}</span>
              </td>
              <td>{d.deployment_state ?? "—"}</td>
              <td>{d.reason || (d.healthy_since ? `healthy since ${when(d.healthy_since)}` : "")}</td>
            </tr>
          ))}
        </Table>
      </article>
      <article aria-labelledby="rollout-history-title">
        <h2 id="rollout-history-title">History</h2>
        {events.length === 0 ? (
          <p class="empty">Nothing happened yet.</p>
        ) : (
          <Table labelledBy="rollout-history-title" columns={["When", "What", "By", "Wave", "Device", "Message"]}>
            {events.map((e) => (
              <tr key={e.id}>
                <td>{when(e.recorded_at)}</td>
                <td>{e.kind.replace(/_/g, " ")}</td>
                <td>{e.actor ?? "the rollout"}</td>
                <td>{e.wave === null ? "" : e.wave + 1}</td>
                <td>{e.device_id ? (deviceNames.get(e.device_id) ?? "") : ""}</td>
                <td>{e.message}</td>
              </tr>
            ))}
          </Table>
        )}
      </article>
    </section>
  );
}
