"use strict";
// Shared by the node tests: a real Node-RED runtime (node-red-node-test-helper), the Modelyard
// nodes loaded into it, a way to send a message and wait for what comes out (the node's output
// or a catch node), and the result file the pytest driver reads back.
const fs = require("node:fs");
const helper = require("node-red-node-test-helper");

helper.init(require.resolve("node-red"));

const NODES = [
  require("../nodes/agent-config.js"),
  require("../nodes/device-model.js"),
  require("../nodes/gateway-config.js"),
  require("../nodes/gateway-chat.js"),
];

/** Return a required environment variable (the pytest driver sets them). */
function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run this test from tests/test_node_red.py`);
  }
  return value;
}

/** Start Node-RED and deploy `flow` (its nodes put on one tab, as the editor would). */
async function start(flow, credentials = {}) {
  await new Promise((resolve, reject) => helper.startServer((err) => (err ? reject(err) : resolve())));
  const tab = { id: "tab", type: "tab", label: "modelyard test" };
  // A node with a position is a flow node, one without is a configuration node.
  const placed = flow.map((n) => (n.type.startsWith("modelyard-") && !n.wires ? { z: "tab", ...n } : { z: "tab", x: 100, y: 100, wires: [], ...n }));
  await helper.load(NODES, [tab, ...placed], credentials);
}

async function stop() {
  await helper.unload();
  await new Promise((resolve) => helper.stopServer(resolve));
}

/**
 * Send `msg` into node `into` and resolve with every message seen at the helper nodes `outputs`
 * (ids) and at `caught` until `until(seen)` is true: {out: [...], caught: [...]}.
 */
function exchange(into, msg, { out = "out", caught = "caught", until, timeoutMs = 60000 } = {}) {
  const tag = `t${Math.random().toString(36).slice(2)}`;
  const seen = { out: [], caught: [] };
  const finished = until || ((s) => s.out.length + s.caught.length > 0);
  return new Promise((resolve, reject) => {
    const outNode = helper.getNode(out);
    const caughtNode = helper.getNode(caught);
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no answer within ${timeoutMs} ms: ${JSON.stringify(seen).slice(0, 500)}`));
    }, timeoutMs);
    function onOut(m) {
      if (m.tag === tag) {
        seen.out.push(m);
        check();
      }
    }
    function onCaught(m) {
      if (m.tag === tag) {
        seen.caught.push(m);
        check();
      }
    }
    function check() {
      if (finished(seen)) {
        cleanup();
        resolve(seen);
      }
    }
    function cleanup() {
      clearTimeout(timer);
      outNode.removeListener("input", onOut);
      caughtNode.removeListener("input", onCaught);
    }
    outNode.on("input", onOut);
    caughtNode.on("input", onCaught);
    helper.getNode(into).receive({ ...msg, tag });
  });
}

/** Merge `values` into the JSON result file the pytest driver reads (MODELYARD_RESULT_FILE). */
function report(values) {
  const path = process.env.MODELYARD_RESULT_FILE;
  if (!path) {
    return;
  }
  let current = {};
  try {
    current = JSON.parse(fs.readFileSync(path, "utf8"));
  } catch {
    current = {};
  }
  fs.writeFileSync(path, JSON.stringify({ ...current, ...values }));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

module.exports = { helper, env, start, stop, exchange, report, sleep };
