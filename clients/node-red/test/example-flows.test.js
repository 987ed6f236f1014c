"use strict";
// The example flows (examples/*.json, offered by the editor's Import > Examples) deploy in a
// real Node-RED runtime: every node type is known and every configuration node they name exists.
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { describe, it, afterEach } = require("node:test");
const { helper, report } = require("./support");

const EXAMPLES = path.join(__dirname, "..", "examples");
const CORE = path.dirname(require.resolve("@node-red/nodes/package.json"));
const CORE_NODES = {
  inject: "core/common/20-inject.js",
  debug: "core/common/21-debug.js",
  catch: "core/common/25-catch.js",
  "file in": "core/storage/10-file.js",
};
const OURS = ["agent-config", "device-model", "gateway-config", "gateway-chat"].map((n) =>
  require(`../nodes/${n}.js`),
);

describe("example flows", () => {
  afterEach(async () => {
    await helper.unload();
    await new Promise((resolve) => helper.stopServer(resolve));
  });

  const files = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith(".json"));
  it("exist", () => {
    assert.ok(files.length >= 2);
    report({ example_flows: files.length });
  });

  for (const file of files) {
    it(`${file} deploys with every node started`, async () => {
      const flow = JSON.parse(fs.readFileSync(path.join(EXAMPLES, file), "utf8"));
      const types = new Set(flow.map((n) => n.type));
      const core = [...types].filter((t) => CORE_NODES[t]).map((t) => require(path.join(CORE, CORE_NODES[t])));
      const unknown = [...types].filter((t) => t !== "tab" && !CORE_NODES[t] && !t.startsWith("modelyard-"));
      assert.deepEqual(unknown, []);
      await new Promise((resolve, reject) => helper.startServer((err) => (err ? reject(err) : resolve())));
      await helper.load([...core, ...OURS], flow, {});
      for (const node of flow.filter((n) => n.type !== "tab")) {
        assert.ok(helper.getNode(node.id), `${node.type} ${node.id} did not start`);
        for (const ref of ["agent", "gateway"]) {
          if (node[ref]) {
            assert.ok(helper.getNode(node[ref]), `${node.id} names a missing ${ref} ${node[ref]}`);
          }
        }
      }
    });
  }
});
