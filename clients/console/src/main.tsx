import "@picocss/pico/css/pico.min.css";
import "./styles.css";

import { render } from "preact";

import { App } from "./app.tsx";
import { Auth } from "./auth.ts";
import { loadConfig } from "./config.ts";

async function start(root: HTMLElement): Promise<void> {
  try {
    const config = await loadConfig();
    const auth = new Auth(config);
    const session = await auth.restore();
    root.textContent = ""; // the "Loading the console" placeholder of index.html
    render(<App config={config} auth={auth} initial={session} />, root);
  } catch (error) {
    root.textContent = "";
    render(
      <main class="container">
        <article role="alert">
          <h1>The console cannot start</h1>
          <p>{error instanceof Error ? error.message : String(error)}</p>
          <button onClick={() => window.location.reload()}>Try again</button>
        </article>
      </main>,
      root,
    );
  }
}

void start(document.getElementById("app")!);
