"use strict";
// The `device model` node against a real device agent serving a JSON and an image handlers
// project in Docker (set up by tests/test_node_red.py, which passes their names in the
// environment).
const assert = require("node:assert/strict");
const fs = require("node:fs");
const { describe, it, before, after } = require("node:test");
const { helper, env, start, stop, exchange, report } = require("./support");

const AGENT = env("MODELYARD_AGENT_URL");
const JSON_MODEL = env("MODELYARD_JSON_MODEL");
const IMAGE_MODEL = env("MODELYARD_IMAGE_MODEL");

const flow = [
  { id: "agent", type: "modelyard-agent", url: AGENT },
  { id: "score", type: "modelyard-device-model", agent: "agent", model: JSON_MODEL, handler: "predict", wires: [["out"]] },
  { id: "digit", type: "modelyard-device-model", agent: "agent", model: IMAGE_MODEL, handler: "predict", wires: [["out"]] },
  { id: "any", type: "modelyard-device-model", agent: "agent", model: "", handler: "", wires: [["out"]] },
  { id: "out", type: "helper" },
  { id: "catch", type: "catch", scope: null, uncaught: false, wires: [["caught"]] },
  { id: "caught", type: "helper" },
];

describe("device model node", () => {
  before(() => start(flow));
  after(() => stop());

  it("fills the editor's drop-downs from the agent's /models", async () => {
    const res = await helper.request().get("/modelyard/agent/models").query({ id: "agent" }).expect(200);
    const byName = Object.fromEntries(res.body.items.map((m) => [m.model_name, m]));
    assert.deepEqual(byName[JSON_MODEL].handlers.sort(), ["fail", "predict"]);
    assert.deepEqual(byName[IMAGE_MODEL].handlers, ["predict"]);
    assert.equal(byName[JSON_MODEL].running, true);
    // An agent config node not deployed yet: the URL the dialog holds.
    const typed = await helper.request().get("/modelyard/agent/models").query({ url: AGENT }).expect(200);
    assert.equal(typed.body.items.length, res.body.items.length);
    await helper.request().get("/modelyard/agent/models").query({ url: "file:///etc/passwd" }).expect(400);
    report({ dropdown_models: res.body.items.length });
  });

  it("sends msg.payload as JSON and answers payload, statusCode, headers, duration, version", async () => {
    const { out, caught } = await exchange("score", { payload: { amount: 5000, card: "x" } });
    assert.equal(caught.length, 0, JSON.stringify(caught[0]?.error));
    const msg = out[0];
    assert.deepEqual(msg.payload, { fraud: true, fields: ["amount", "card"] });
    assert.equal(msg.statusCode, 200);
    assert.match(msg.headers["content-type"], /^application\/json/);
    assert.ok(msg.duration > 0);
    assert.equal(msg.version, env("MODELYARD_JSON_VERSION"));
    report({ json_ok: 1 });
  });

  it("sends a Buffer as the image bytes to an image-input model", async () => {
    const image = fs.readFileSync(env("MODELYARD_IMAGE_FILE"));
    const { out, caught } = await exchange("digit", { payload: image });
    assert.equal(caught.length, 0, JSON.stringify(caught[0]?.error));
    assert.deepEqual(out[0].payload, JSON.parse(env("MODELYARD_IMAGE_ANSWER")));
    assert.equal(out[0].statusCode, 200);
    assert.equal(out[0].version, env("MODELYARD_IMAGE_VERSION"));
    report({ image_ok: 1 });
  });

  it("takes the model and handler from msg when the node leaves them empty", async () => {
    const { out } = await exchange("any", { model: JSON_MODEL, handler: "predict", payload: { amount: 1 } });
    assert.deepEqual(out[0].payload, { fraud: false, fields: ["amount"] });
  });

  it("raises an unknown model to a catch node with the problem's detail", async () => {
    const { out, caught } = await exchange("any", { model: "no-such-model", handler: "predict", payload: {} });
    assert.equal(out.length, 0);
    assert.equal(caught[0].statusCode, 404);
    assert.match(caught[0].error.message, /No model named 'no-such-model'/);
    assert.equal(caught[0].error.source.id, "any");
    report({ unknown_caught: 1 });
  });

  it("raises a handler's exception to a catch node", async () => {
    const { caught } = await exchange("any", { model: JSON_MODEL, handler: "fail", payload: { amount: 1 } });
    assert.equal(caught[0].statusCode, 500);
    assert.match(caught[0].error.message, /cannot score/);
    assert.equal(caught[0].payload.status, 500);
    report({ handler_error_caught: 1 });
  });
});
