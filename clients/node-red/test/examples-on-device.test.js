"use strict";
// The device model node against the real example projects on a device (tests/test_examples.py
// deploys them): the iris classifier gets JSON, the digits classifier a PNG as a Buffer.
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { describe, it, before, after } = require("node:test");
const { env, start, stop, exchange, report } = require("./support");

const SAMPLES = path.join(__dirname, "..", "..", "..", "examples", "digits-classifier", "samples");
const flow = [
  { id: "agent", type: "modelyard-agent", url: env("MODELYARD_AGENT_URL") },
  { id: "iris", type: "modelyard-device-model", agent: "agent", model: env("MODELYARD_IRIS_MODEL"), handler: "predict", wires: [["out"]] },
  { id: "digits", type: "modelyard-device-model", agent: "agent", model: env("MODELYARD_DIGITS_MODEL"), handler: "predict", sendAs: "auto", wires: [["out"]] },
  { id: "out", type: "helper" },
  { id: "catch", type: "catch", scope: null, uncaught: false, wires: [["caught"]] },
  { id: "caught", type: "helper" },
];

describe("device model node on the example projects", () => {
  before(() => start(flow));
  after(() => stop());

  it("classifies an iris record sent as JSON", async () => {
    const record = { sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3 };
    const { out, caught } = await exchange("iris", { payload: record });
    assert.equal(caught.length, 0, JSON.stringify(caught[0]?.error));
    assert.equal(out[0].payload.species, "virginica");
    assert.equal(out[0].statusCode, 200);
    report({ iris: out[0].payload.species });
  });

  it("reads every sample digit sent as image bytes", async () => {
    const read = {};
    for (let digit = 0; digit < 10; digit += 1) {
      const image = fs.readFileSync(path.join(SAMPLES, `digit-${digit}.png`));
      const { out, caught } = await exchange("digits", { payload: image });
      assert.equal(caught.length, 0, JSON.stringify(caught[0]?.error));
      read[digit] = out[0].payload.digit;
    }
    assert.deepEqual(read, Object.fromEntries([...Array(10).keys()].map((d) => [d, d])));
    report({ digits_read: Object.keys(read).length });
  });
});
