import { useEffect, useMemo, useRef, useState } from "preact/hooks";

import { deployerFor, gatewayFor, registryFor } from "./api.ts";
import {
  type Auth,
  canDecide,
  hasRole,
  initialWorkspace,
  rememberWorkspace,
  rolesIn,
  type Session,
} from "./auth.ts";
import type { ConsoleConfig } from "./config.ts";
import { type Context, ContextProvider } from "./context.ts";
import { ModelPage } from "./model-page.tsx";
import { ModelsList } from "./models-list.tsx";
import { useRoute } from "./router.ts";
import { SignIn } from "./sign-in.tsx";
import { DevicePage, DevicesList } from "./devices.tsx";
import { GatewayModels, type Tab as GatewayTab } from "./gateway.tsx";
import { ProvisioningTokens } from "./provisioning.tsx";
import { RolloutForm, RolloutPage, RolloutsList } from "./rollouts.tsx";
import { SystemForm, SystemsList } from "./systems.tsx";

export function App(props: { config: ConsoleConfig; auth: Auth; initial: Session | null }) {
  const [session, setSession] = useState(props.initial);
  const [expired, setExpired] = useState(false);
  useEffect(() => {
    if (!session || session.method !== "oidc") return;
    void props.auth.user().then((user) => {
      if (user) props.auth.keepRenewed(session, user, () => setExpired(true));
    });
    return () => props.auth.stopRenewing();
  }, [session]);
  if (session && expired) {
    return (
      <main class="container sign-in">
        <p role="alert">
          Your session has ended and could not be renewed. <a href="#/models" onClick={() => (props.auth.signOut(session), setExpired(false), setSession(null))}>Sign in again</a>
        </p>
      </main>
    );
  }
  if (!session) return <SignIn config={props.config} auth={props.auth} onSignedIn={setSession} />;
  return (
    <Shell
      config={props.config}
      session={session}
      onSignOut={async () => {
        await props.auth.signOut(session);
        setSession(null);
        window.location.hash = "";
      }}
    />
  );
}

function useOnline(): boolean {
  const [online, setOnline] = useState(navigator.onLine);
  useEffect(() => {
    const on = () => setOnline(true);
    const off = () => setOnline(false);
    window.addEventListener("online", on);
    window.addEventListener("offline", off);
    return () => {
      window.removeEventListener("online", on);
      window.removeEventListener("offline", off);
    };
  }, []);
  return online;
}

function Shell(props: { config: ConsoleConfig; session: Session; onSignOut: () => void }) {
  const { session } = props;
  const [workspace, setWorkspace] = useState(() => initialWorkspace(session));
  const route = useRoute();
  const online = useOnline();
  const main = useRef<HTMLElement>(null);
  const context: Context = useMemo(
    () => ({
      config: props.config,
      session,
      workspace,
      registry: registryFor(props.config.registry_url, () => session.token, workspace),
      deployer: deployerFor(props.config.deployer_url, () => session.token, workspace),
      gateway: gatewayFor(props.config.gateway_url, () => session.token, workspace),
      canEdit: hasRole(session, workspace, "editor"),
      canAdmin: hasRole(session, workspace, "admin"),
      canOperate: hasRole(session, workspace, "admin") || rolesIn(session, workspace).has("operator"),
      canDecide: canDecide(session, workspace),
    }),
    [props.config, session, workspace],
  );
  // A new screen: move focus to its main region, so screen readers start reading there.
  useEffect(() => main.current?.focus(), [route.join("/")]);
  const section = route[0] ?? "models";
  const roles = [...rolesIn(session, workspace)].join(", ") || "viewer";
  return (
    <ContextProvider value={context}>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), main.current?.focus())}>
        Skip to content
      </a>
      <header class="container-fluid shell">
        <nav aria-label="Main">
          <ul>
            <li>
              <strong>Modelyard</strong>
            </li>
            <li>
              <a href="#/models" aria-current={section === "models" ? "page" : undefined}>
                AI models
              </a>
            </li>
            <li>
              <a href="#/systems" aria-current={section === "systems" ? "page" : undefined}>
                AI systems
              </a>
            </li>
            <li>
              <a href="#/devices" aria-current={section === "devices" ? "page" : undefined}>
                Devices
              </a>
            </li>
            <li>
              <a href="#/rollouts" aria-current={section === "rollouts" ? "page" : undefined}>
                Rollouts
              </a>
            </li>
            <li>
              <a href="#/gateway" aria-current={section === "gateway" ? "page" : undefined}>
                Gateway
              </a>
            </li>
          </ul>
          <ul>
            <li>
              <label class="inline">
                Workspace{" "}
                <select
                  value={workspace}
                  disabled={session.workspaces.length < 2}
                  onChange={(e) => {
                    const next = e.currentTarget.value;
                    rememberWorkspace(next);
                    setWorkspace(next);
                    window.location.hash = "#/models";
                  }}
                >
                  {session.workspaces.map((w) => (
                    <option key={w} value={w}>
                      {w}
                    </option>
                  ))}
                </select>
              </label>
            </li>
            <li>
              <span class="who" aria-label="Signed in as">
                {session.sub} <small>({roles})</small>
              </span>
            </li>
            <li>
              <button class="secondary outline" onClick={props.onSignOut}>
                Sign out
              </button>
            </li>
          </ul>
        </nav>
      </header>
      {!online && (
        <p role="status" class="banner offline">
          You are offline: what you see may be out of date, and changes cannot be saved until the
          connection is back.
        </p>
      )}
      <main id="main" class="container" tabIndex={-1} ref={main} key={workspace}>
        {section === "models" && route[1] && (
          <ModelPage id={route[1]} tab={route[2] ?? "overview"} />
        )}
        {section === "models" && !route[1] && <ModelsList />}
        {section === "systems" && route[1] === "new" && <SystemForm />}
        {section === "systems" && route[1] && route[1] !== "new" && <SystemForm id={route[1]} />}
        {section === "systems" && !route[1] && <SystemsList />}
        {section === "devices" &&
          (route[1] === "provisioning" ? <ProvisioningTokens /> : route[1] ? <DevicePage id={route[1]} /> : <DevicesList />)}
        {section === "rollouts" && route[1] === "new" && route[2] && <RolloutForm modelId={route[2]} />}
        {section === "rollouts" && route[1] && route[1] !== "new" && <RolloutPage id={route[1]} />}
        {section === "rollouts" && !route[1] && <RolloutsList />}
        {section === "gateway" && <GatewayModels tab={gatewayTab(route[1])} />}
      </main>
    </ContextProvider>
  );
}

function gatewayTab(part: string | undefined): GatewayTab {
  return part === "instances" || part === "keys" || part === "requests" || part === "playground" || part === "policy" ? part : "models";
}
