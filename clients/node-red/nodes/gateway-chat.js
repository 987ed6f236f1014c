"use strict";
// The `gateway chat` node: a chat completion from a model group through the Modelyard gateway,
// which answers from the group's first available instance and fails over on its own. The
// serving instance (`x-modelyard-instance`) and the number of upstream attempts
// (`x-modelyard-attempts`) come back in msg.instance and msg.attempts. With output `chunks` the
// answer streams as one message per chunk and a last message with the whole text
// (msg.complete = true); with `message`, one message at the end. An error answer (403 the model
// is not approved, 429, 503 no instance could answer, a stream cut mid-way) is a catchable error
// with msg.reason (the gateway's error code) and msg.statusCode.
const { joinUrl, headersObject, readBody, describeError, ModelyardError, sseData } = require("../lib/http");
const { createCallingNode } = require("../lib/inflight");

const DEFAULT_TIMEOUT_S = 120;

/** Return the chat request body for `msg` (payload: text, messages, or a request object). */
function requestBody(msg, group, system) {
  const payload = msg.payload;
  let body;
  if (typeof payload === "string") {
    body = { messages: [{ role: "user", content: payload }] };
  } else if (Array.isArray(payload)) {
    body = { messages: payload };
  } else if (payload && typeof payload === "object" && Array.isArray(payload.messages)) {
    body = { ...payload };
  } else {
    throw new Error("msg.payload must be text, an array of messages or {messages: [...]}");
  }
  if (system && !body.messages.some((m) => m && m.role === "system")) {
    body.messages = [{ role: "system", content: system }, ...body.messages];
  }
  body.model = group;
  return body;
}

/** Return the reason code of an error answer (OpenAI shape), or a code made from the status. */
function reasonOf(status, answer) {
  if (answer && typeof answer === "object" && answer.error && answer.error.code) {
    return String(answer.error.code);
  }
  return { 403: "forbidden", 429: "rate_limited", 503: "unavailable" }[status] || `http_${status}`;
}

module.exports = function (RED) {
  function GatewayChatNode(config) {
    const node = this;
    const calls = createCallingNode(RED, node, config, "gateway", DEFAULT_TIMEOUT_S);
    node.group = config.group || "";
    node.output = config.output === "chunks" ? "chunks" : "message";
    node.system = config.system || "";

    /** Mark `msg` with the failed answer and end the input with a catchable error. */
    function fail(msg, done, status, answer, prefix) {
      const reason = reasonOf(status, answer);
      msg.statusCode = status;
      msg.reason = reason;
      if (answer && answer.error && answer.error.attempt_count !== undefined) {
        msg.attempts = answer.error.attempt_count;
      }
      node.status({ fill: "red", shape: "ring", text: `${status} ${reason}` });
      const message = `${prefix}${describeError(status, answer)}`;
      done(new ModelyardError(message, { status, body: answer, reason }));
    }

    node.on("input", async (msg, send, done) => {
      const group = node.group || msg.model;
      if (!node.gateway) {
        done(new Error("no gateway configured"));
        return;
      }
      if (!group) {
        done(new Error("no model group: set it on the node or in msg.model"));
        return;
      }
      const stream = node.output === "chunks";
      const call = calls.start(node.timeout);
      node.status({ fill: "blue", shape: "dot", text: group });
      try {
        const body = requestBody(msg, group, node.system);
        if (stream) {
          body.stream = true;
        } else {
          delete body.stream;
        }
        const response = await fetch(joinUrl(node.gateway.url, "/v1/chat/completions"), {
          method: "POST",
          headers: {
            "content-type": "application/json",
            accept: stream ? "text/event-stream" : "application/json",
            authorization: `Bearer ${node.gateway.apiKey}`,
          },
          body: JSON.stringify(body),
          signal: call.signal,
        });
        msg.statusCode = response.status;
        msg.headers = headersObject(response.headers);
        msg.instance = response.headers.get("x-modelyard-instance") || undefined;
        const attempts = response.headers.get("x-modelyard-attempts");
        msg.attempts = attempts === null ? undefined : Number(attempts);
        msg.model = group;
        const type = response.headers.get("content-type") || "";
        if (!response.ok) {
          const answer = await readBody(response);
          if (response.status === 429 && response.headers.get("retry-after")) {
            msg.retryAfter = response.headers.get("retry-after");
          }
          msg.payload = answer;
          fail(msg, done, response.status, answer, `${group}: `);
          return;
        }
        if (!stream || !type.startsWith("text/event-stream")) {
          const answer = await readBody(response);
          msg.completion = answer;
          msg.payload = answer && answer.choices ? answer.choices[0]?.message?.content ?? "" : answer;
          msg.duration = call.elapsedMs();
          node.status({ fill: "green", shape: "dot", text: `${msg.instance || "ok"} (${msg.attempts ?? 1})` });
          send(msg);
          done();
          return;
        }
        let text = "";
        let index = 0;
        for await (const data of sseData(response.body)) {
          if (data === "[DONE]") {
            break;
          }
          let chunk;
          try {
            chunk = JSON.parse(data);
          } catch {
            continue;
          }
          if (chunk.error) {
            // The gateway's event when the serving instance fails mid-stream.
            msg.payload = text;
            fail(msg, done, 502, chunk, `${group}: stream cut after ${index} chunks: `);
            return;
          }
          const delta = chunk.choices?.[0]?.delta?.content ?? chunk.choices?.[0]?.text ?? "";
          text += delta;
          const part = RED.util.cloneMessage(msg);
          part.payload = delta;
          part.chunk = chunk;
          part.index = index;
          part.complete = false;
          send(part);
          index += 1;
        }
        msg.payload = text;
        msg.chunks = index;
        msg.complete = true;
        msg.duration = call.elapsedMs();
        node.status({ fill: "green", shape: "dot", text: `${msg.instance || "ok"}: ${index} chunks` });
        send(msg);
        done();
      } catch (err) {
        const reason = call.failure(err);
        msg.reason = call.aborted() ? "timeout" : "connect_failed";
        node.status({ fill: "red", shape: "ring", text: reason.slice(0, 40) });
        done(new ModelyardError(`${group}: ${reason}`, { reason: msg.reason }));
      } finally {
        call.end();
      }
    });
  }
  RED.nodes.registerType("modelyard-gateway-chat", GatewayChatNode);
};
