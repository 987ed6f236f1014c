"use strict";
// The flow keeps working while the model is redeployed to a new version: tests/test_node_red.py
// starts this, waits for the ready file, then deploys MODELYARD_NEW_VERSION; this sends a message
// every 100 ms through an unchanged flow until the new version has answered a few times.
const assert = require("node:assert/strict");
const fs = require("node:fs");
const { describe, it, before, after } = require("node:test");
const { env, start, stop, exchange, report, sleep } = require("./support");

const flow = [
  { id: "agent", type: "modelyard-agent", url: env("MODELYARD_AGENT_URL") },
  { id: "score", type: "modelyard-device-model", agent: "agent", model: env("MODELYARD_JSON_MODEL"), handler: "predict", wires: [["out"]] },
  { id: "out", type: "helper" },
  { id: "catch", type: "catch", scope: null, uncaught: false, wires: [["caught"]] },
  { id: "caught", type: "helper" },
];

describe("device model node during a redeploy", () => {
  before(() => start(flow));
  after(() => stop());

  it("answers every message while the version changes, with no change to the flow", async () => {
    const oldVersion = env("MODELYARD_OLD_VERSION");
    const newVersion = env("MODELYARD_NEW_VERSION");
    const deadline = Date.now() + Number(process.env.MODELYARD_REDEPLOY_TIMEOUT_S || 240) * 1000;
    const counts = { calls: 0, errors: 0, old_answers: 0, new_answers: 0 };
    const errors = [];
    while (counts.new_answers < 5 && Date.now() < deadline) {
      counts.calls += 1;
      const { out, caught } = await exchange("score", { payload: { amount: counts.calls } });
      if (caught.length) {
        counts.errors += 1;
        errors.push(caught[0].error.message);
      } else if (out[0].version === oldVersion) {
        counts.old_answers += 1;
        if (counts.old_answers === 1) {
          fs.writeFileSync(env("MODELYARD_READY_FILE"), "flowing");
        }
      } else if (out[0].version === newVersion) {
        counts.new_answers += 1;
      }
      await sleep(100);
    }
    report({ redeploy: counts, redeploy_errors: errors.slice(0, 5) });
    assert.ok(counts.old_answers >= 1, "the old version never answered");
    assert.equal(counts.new_answers, 5, "the new version did not answer in time");
    assert.equal(counts.errors, 0, errors.join("\n"));
  });
});
