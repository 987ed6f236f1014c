import { fileURLToPath } from "node:url";

import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

// The console is built only on the typed clients in ../typescript (imported from source);
// their one runtime dependency, openapi-fetch, resolves from this package's node_modules.
export default defineConfig({
  plugins: [preact()],
  resolve: {
    alias: {
      "@modelyard/clients": fileURLToPath(new URL("../typescript/src/index.ts", import.meta.url)),
    },
    dedupe: ["openapi-fetch", "preact"],
  },
  build: { target: "es2022", sourcemap: false, reportCompressedSize: false },
});
