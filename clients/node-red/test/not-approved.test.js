"use strict";
// The gateway chat node on a group whose registry model the workspace's policy gate refuses:
// the gateway answers 403 `model_not_approved`, which the node raises to a catch node.
const assert = require("node:assert/strict");
const { describe, it, before, after } = require("node:test");
const { env, start, stop, exchange, report } = require("./support");

const flow = [
  { id: "gw", type: "modelyard-gateway", url: env("MODELYARD_GATEWAY_URL") },
  { id: "ask", type: "modelyard-gateway-chat", gateway: "gw", group: env("MODELYARD_BLOCKED_GROUP"), output: "message", wires: [["out"]] },
  { id: "stream", type: "modelyard-gateway-chat", gateway: "gw", group: env("MODELYARD_BLOCKED_GROUP"), output: "chunks", wires: [["out"]] },
  { id: "out", type: "helper" },
  { id: "catch", type: "catch", scope: null, uncaught: false, wires: [["caught"]] },
  { id: "caught", type: "helper" },
];

describe("gateway chat node, model not approved", () => {
  before(() => start(flow, { gw: { apiKey: env("MODELYARD_GATEWAY_KEY") } }));
  after(() => stop());

  it("raises the 403 with its reason to a catch node, plain and streaming", async () => {
    for (const node of ["ask", "stream"]) {
      const { out, caught } = await exchange(node, { payload: "hi" });
      assert.equal(out.length, 0);
      assert.equal(caught[0].statusCode, 403);
      assert.equal(caught[0].reason, "model_not_approved");
      assert.match(caught[0].error.message, /is not available/);
      assert.equal(caught[0].payload.error.type, "permission_error");
    }
    report({ not_approved_caught: 2 });
  });
});
