/**
 * Devices: provisioning tokens. A token lets a device's installer register it (with the labels
 * the token gives); the secret is shown once, with Copy; the list shows uses and expiry, and a
 * token can be revoked (devices it registered keep working).
 */
import { useRef, useState } from "preact/hooks";

import { type ProvisioningToken, type ProvisioningTokenWithSecret, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";
import { parseSelector } from "./deploy.tsx";
import { labelsText } from "./devices.tsx";
import { Confirm, DataTable, ErrorNote, Field, Page, Secret, useAction, useItems, useSubmit, when } from "./ui.tsx";

/** Return what a token can still do: active, used up, expired or revoked. */
function status(t: ProvisioningToken): string {
  if (t.revoked) return "revoked";
  if (Date.parse(t.expires_at) <= Date.now()) return "expired";
  if (t.uses >= t.max_uses) return "used up";
  return "active";
}

export function DeviceTabs(props: { current: "list" | "tokens" }) {
  const { canEdit } = useConsole();
  if (!canEdit) return null;
  return (
    <nav aria-label="Devices sections" class="tabs">
      <ul>
        <li>
          <a href="#/devices" aria-current={props.current === "list" ? "page" : undefined}>
            Device List
          </a>
        </li>
        <li>
          <a href="#/devices/provisioning" aria-current={props.current === "tokens" ? "page" : undefined}>
            Provisioning tokens
          </a>
        </li>
      </ul>
    </nav>
  );
}

export function ProvisioningTokens() {
  const { deployer, canEdit } = useConsole();
  const tokens = useItems<ProvisioningToken>(
    () => deployer.GET("/v1/provisioning-tokens", { params: { query: { limit: 200, sort: "-created_at" } } }),
    [deployer],
  );
  const action = useAction();
  const revoke = (token: ProvisioningToken) =>
    action.run(token.id, async () => {
      await unwrap(deployer.DELETE("/v1/provisioning-tokens/{token_id}", { params: { path: { token_id: token.id } } }));
      tokens.reload();
    });

  return (
    <Page id="tokens-title" title="Provisioning tokens">
      <DeviceTabs current="tokens" />
      {!canEdit ? (
        <p role="alert">Provisioning tokens need the editor role in this workspace.</p>
      ) : (
        <>
          <p class="muted">
            A device's installer registers it with a provisioning token: <code>modelyard-agent register --token …</code>.
            Every device it registers gets the token's labels. Revoking a token stops new registrations; devices it
            registered keep working.
          </p>
          <CreateToken onCreated={tokens.reload} />
          <article aria-labelledby="tokens-list-title">
            <h2 id="tokens-list-title">Tokens</h2>
            <DataTable
              actionError={action.error}
              what="the provisioning tokens"
              list={tokens}
              empty="No provisioning tokens yet."
              caption="Provisioning tokens, newest first"
              columns={["Name", "Labels", "Uses", "Expires", "Created", "Status", "Actions"]}
              row={(t) => (
                <tr key={t.id}>
                  <th scope="row">{t.name}</th>
                  <td>{Object.keys(t.labels).length ? labelsText(t.labels) : "—"}</td>
                  <td>
                    {t.uses} of {t.max_uses}
                  </td>
                  <td>{when(t.expires_at)}</td>
                  <td>
                    {when(t.created_at)} by {t.created_by}
                  </td>
                  <td>{status(t)}</td>
                  <td class="actions-cell">
                    {!t.revoked && (
                      <Confirm
                        text="Revoke"
                        label={`Revoke ${t.name}`}
                        question={`Revoke the provisioning token ${t.name}?`}
                        yes={`Yes, revoke ${t.name}`}
                        disabled={action.busy !== null}
                        onConfirm={() => revoke(t)}
                      />
                    )}
                  </td>
                </tr>
              )}
            />
          </article>
        </>
      )}
    </Page>
  );
}

function CreateToken(props: { onCreated: () => void }) {
  const { deployer } = useConsole();
  const form = useRef<HTMLFormElement>(null);
  const { errors, failure, busy, submit } = useSubmit(form);
  const [name, setName] = useState("");
  const [uses, setUses] = useState("1");
  const [hours, setHours] = useState("24");
  const [labels, setLabels] = useState("");
  const [created, setCreated] = useState<ProvisioningTokenWithSecret | null>(null);
  const parsed = labels.trim() ? parseSelector(labels) : {};
  return (
    <article aria-labelledby="create-token-title">
      <h2 id="create-token-title">Create a provisioning token</h2>
      {created && (
        <div class="secret-once" role="region" aria-label="The new provisioning token">
          <p role="alert" class="warning-note">
            <strong>Copy the token {created.name} now: it is shown only this once.</strong> The deployer keeps only a
            hash of it.
          </p>
          <Secret key={created.token} value={created.token} label="The new provisioning token's secret" what="token" />
          <button type="button" class="secondary outline small" onClick={() => setCreated(null)}>
            Done, I have copied it
          </button>
        </div>
      )}
      <form
        ref={form}
        onSubmit={(e) => {
          e.preventDefault();
          if (parsed === null) return;
          void submit(async () => {
            const { data } = await unwrap(
              deployer.POST("/v1/provisioning-tokens", {
                body: { name: name.trim(), max_uses: Number(uses), expires_in_s: Math.round(Number(hours) * 3600), labels: parsed },
              }),
            );
            setCreated(data);
            setName("");
            props.onCreated();
          });
        }}
      >
        <div class="grid">
          <Field label="Name" required error={errors.name} hint="What it is for, e.g. berlin-line-2.">
            {(a) => <input {...a} value={name} onInput={(e) => setName(e.currentTarget.value)} />}
          </Field>
          <Field label="Devices it may register" error={errors.max_uses}>
            {(a) => <input {...a} type="number" min="1" value={uses} onInput={(e) => setUses(e.currentTarget.value)} />}
          </Field>
          <Field label="Valid for (hours)" error={errors.expires_in_s} hint="At most 30 days (720 hours).">
            {(a) => <input {...a} type="number" min="0.1" step="any" value={hours} onInput={(e) => setHours(e.currentTarget.value)} />}
          </Field>
          <Field
            label="Labels"
            error={errors.labels ?? (parsed === null ? "Write key=value (several: key=value, key2=value2)." : undefined)}
            hint="Every device it registers gets them, e.g. site=berlin."
          >
            {(a) => <input {...a} value={labels} onInput={(e) => setLabels(e.currentTarget.value)} placeholder="site=berlin" />}
          </Field>
        </div>
        {failure ? <ErrorNote error={failure} /> : null}
        <button type="submit" aria-busy={busy} disabled={busy || !name.trim() || parsed === null}>
          Create the token
        </button>
      </form>
    </article>
  );
}
