"use strict";
// The `gateway chat` node against the real gateway with two fake OpenAI backends (processes the
// pytest driver started; MODELYARD_BACKEND_PIDS maps each instance's name to its pid, so this
// test can kill the one serving and see the gateway fail over).
const assert = require("node:assert/strict");
const { describe, it, before, after } = require("node:test");
const { helper, env, start, stop, exchange, report } = require("./support");

const GROUP = env("MODELYARD_GROUP");
const PIDS = JSON.parse(env("MODELYARD_BACKEND_PIDS"));

const flow = [
  { id: "gw", type: "modelyard-gateway", url: env("MODELYARD_GATEWAY_URL") },
  { id: "ask", type: "modelyard-gateway-chat", gateway: "gw", group: GROUP, output: "message", wires: [["out"]] },
  { id: "stream", type: "modelyard-gateway-chat", gateway: "gw", group: GROUP, output: "chunks", wires: [["out"]] },
  { id: "any", type: "modelyard-gateway-chat", gateway: "gw", group: "", output: "message", wires: [["out"]] },
  { id: "out", type: "helper" },
  { id: "catch", type: "catch", scope: null, uncaught: false, wires: [["caught"]] },
  { id: "caught", type: "helper" },
];
const credentials = { gw: { apiKey: env("MODELYARD_GATEWAY_KEY") } };

/** Wait for the whole streamed answer (the message with complete: true) or an error. */
const streamed = (s) => s.caught.length > 0 || s.out.some((m) => m.complete);

function kill(instance) {
  process.kill(PIDS[instance], "SIGKILL");
}

describe("gateway chat node", () => {
  let first;
  before(() => start(flow, credentials));
  after(() => stop());

  it("fills the group drop-down from /v1/models with the stored key", async () => {
    const res = await helper.request().post("/modelyard/gateway/groups").send({ id: "gw" }).expect(200);
    assert.ok(res.body.groups.includes(GROUP), JSON.stringify(res.body));
    const wrong = await helper.request().post("/modelyard/gateway/groups").send({ id: "gw", key: "sk-wrong" });
    assert.equal(wrong.status, 502);
    assert.match(wrong.body.error, /401/);
  });

  it("answers one message with the serving instance and the attempts", async () => {
    const { out, caught } = await exchange("ask", { payload: "hello" });
    assert.equal(caught.length, 0, JSON.stringify(caught[0]?.error));
    const msg = out[0];
    assert.ok(msg.instance in PIDS, msg.instance);
    assert.equal(msg.payload, `hello from ${msg.instance}`);
    assert.equal(msg.attempts, 1);
    assert.equal(msg.statusCode, 200);
    assert.equal(msg.completion.object, "chat.completion");
    first = msg.instance;
    report({ plain_ok: 1 });
  });

  it("streams one message per chunk, then the whole text", async () => {
    const { out, caught } = await exchange("stream", { payload: [{ role: "user", content: "hi" }] }, { until: streamed });
    assert.equal(caught.length, 0, JSON.stringify(caught[0]?.error));
    const parts = out.filter((m) => !m.complete);
    const whole = out.find((m) => m.complete);
    assert.equal(parts.length, 5);
    assert.deepEqual(parts.map((m) => m.index), [0, 1, 2, 3, 4]);
    assert.equal(whole.payload, parts.map((m) => m.payload).join(""));
    assert.equal(whole.payload, [0, 1, 2, 3, 4].map((i) => `${whole.instance}${i} `).join(""));
    assert.equal(whole.chunks, 5);
    report({ stream_chunks: parts.length });
  });

  it("keeps answering when the serving backend is killed (failover)", async () => {
    kill(first);
    const other = Object.keys(PIDS).find((name) => name !== first);
    const plain = await exchange("ask", { payload: "still there?" });
    assert.equal(plain.caught.length, 0, JSON.stringify(plain.caught[0]?.error));
    assert.equal(plain.out[0].instance, other);
    assert.equal(plain.out[0].payload, `hello from ${other}`);
    assert.ok(plain.out[0].attempts >= 1);
    const streamedAnswer = await exchange("stream", { payload: "and streaming?" }, { until: streamed });
    assert.equal(streamedAnswer.caught.length, 0, JSON.stringify(streamedAnswer.caught[0]?.error));
    const whole = streamedAnswer.out.find((m) => m.complete);
    assert.equal(whole.instance, other);
    assert.equal(whole.chunks, 5);
    report({ failover: { killed: first, answered_by: other, attempts: plain.out[0].attempts } });
  });

  it("raises a 404 for a group the key may not use, with its reason", async () => {
    const { caught } = await exchange("any", { model: "no-such-group", payload: "hi" });
    assert.equal(caught[0].statusCode, 404);
    assert.equal(caught[0].reason, "model_not_found");
  });

  it("raises a 503 when no instance can answer, with its reason and attempts", async () => {
    for (const name of Object.keys(PIDS)) {
      if (name !== first) {
        kill(name);
      }
    }
    const { out, caught } = await exchange("ask", { payload: "anyone?" });
    assert.equal(out.length, 0);
    const msg = caught[0];
    assert.equal(msg.statusCode, 503);
    assert.equal(msg.reason, "all_instances_failed");
    assert.ok(msg.attempts >= 1);
    assert.match(msg.error.message, /No instance of/);
    const streamedError = await exchange("stream", { payload: "anyone?" }, { until: streamed });
    assert.equal(streamedError.caught[0].reason, "all_instances_failed");
    report({ unavailable_caught: 2 });
  });
});
