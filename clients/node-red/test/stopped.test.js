"use strict";
// A model stopped through the deployer: the node raises the agent's 503 problem to a catch node.
const assert = require("node:assert/strict");
const { describe, it, before, after } = require("node:test");
const { env, start, stop, exchange, report } = require("./support");

const flow = [
  { id: "agent", type: "modelyard-agent", url: env("MODELYARD_AGENT_URL") },
  { id: "score", type: "modelyard-device-model", agent: "agent", model: env("MODELYARD_JSON_MODEL"), handler: "predict", wires: [["out"]] },
  { id: "out", type: "helper" },
  { id: "catch", type: "catch", scope: ["score"], uncaught: false, wires: [["caught"]] },
  { id: "caught", type: "helper" },
];

describe("device model node, model stopped", () => {
  before(() => start(flow));
  after(() => stop());

  it("raises the stopped model's problem to a catch node", async () => {
    const { out, caught } = await exchange("score", { payload: { amount: 1 } });
    assert.equal(out.length, 0);
    const msg = caught[0];
    assert.equal(msg.statusCode, 503);
    assert.match(msg.error.message, /is not running \(state: stopped\)/);
    assert.equal(msg.payload.status, 503);
    assert.equal(msg.headers["retry-after"], "5");
    report({ stopped_caught: 1, stopped_message: msg.error.message });
  });
});
