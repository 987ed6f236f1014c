import { useState } from "preact/hooks";

import type { Auth, Session } from "./auth.ts";
import type { ConsoleConfig } from "./config.ts";

export function SignIn(props: {
  config: ConsoleConfig;
  auth: Auth;
  onSignedIn: (session: Session) => void;
}) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const { config } = props;
  return (
    <main class="container sign-in">
      <article>
        <header>
          <h1>Sign in to Modelyard</h1>
          <p>Govern your AI models and the AI systems that use them.</p>
        </header>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
        {config.oidc ? (
          <button
            aria-busy={busy}
            onClick={async () => {
              setBusy(true);
              try {
                await props.auth.signIn();
              } catch (e) {
                setBusy(false);
                setError(
                  `The sign-in service cannot be reached (${e instanceof Error ? e.message : e}).`,
                );
              }
            }}
          >
            Sign in with your organisation
          </button>
        ) : (
          !config.dev_sign_in && (
            <p>No sign-in is configured: the console needs an OpenID issuer.</p>
          )
        )}
        {config.dev_sign_in && (
          <form
            class="dev-sign-in"
            onSubmit={(e) => {
              e.preventDefault();
              const result = props.auth.devSignIn(token);
              if (typeof result === "string") setError(result);
              else props.onSignedIn(result);
            }}
          >
            <h2>Development sign-in</h2>
            <p>
              The services run in dev mode. Paste a token from{" "}
              <code>modelyard dev-token --sub alice --role admin --workspace default</code>.
            </p>
            <label>
              Development token
              <textarea
                rows={3}
                required
                value={token}
                onInput={(e) => setToken(e.currentTarget.value)}
              />
            </label>
            <button type="submit" class="secondary">
              Sign in with the development token
            </button>
          </form>
        )}
      </article>
    </main>
  );
}
