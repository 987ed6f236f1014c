"use strict";
// The `device model` node: msg.payload to a model deployed on this device, through the agent's
// stable local URL `POST /models/{model}/{handler}` (whatever version or container port serves
// it now), the answer back in msg.payload with msg.statusCode, msg.headers, msg.duration and
// msg.version. An error answer (a stopped or unknown model, a handler that raised) is a
// catchable error carrying the problem's detail.
const { joinUrl, headersObject, readBody, describeError, ModelyardError } = require("../lib/http");
const { createCallingNode } = require("../lib/inflight");

const DEFAULT_TIMEOUT_S = 60;

/** Return the request body and content type for `payload` (`send`: auto, json or bytes). */
function encode(payload, send) {
  if (send === "bytes" || (send !== "json" && Buffer.isBuffer(payload))) {
    if (Buffer.isBuffer(payload)) {
      return { body: payload, type: "application/octet-stream" };
    }
    if (payload instanceof Uint8Array) {
      return { body: Buffer.from(payload), type: "application/octet-stream" };
    }
    if (typeof payload === "string") {
      // A data URL or base64 text, as file-reading and camera nodes often give images.
      const base64 = payload.replace(/^data:[^,]*;base64,/, "");
      return { body: Buffer.from(base64, "base64"), type: "application/octet-stream" };
    }
    throw new Error("an image model takes msg.payload as a Buffer (or base64 text)");
  }
  return { body: JSON.stringify(payload === undefined ? null : payload), type: "application/json" };
}

module.exports = function (RED) {
  function DeviceModelNode(config) {
    const node = this;
    const calls = createCallingNode(RED, node, config, "agent", DEFAULT_TIMEOUT_S);
    node.model = config.model || "";
    node.handler = config.handler || "";
    node.send_as = config.sendAs || "auto";

    node.on("input", async (msg, send, done) => {
      const model = node.model || msg.model;
      const handler = node.handler || msg.handler;
      if (!node.agent) {
        done(new Error("no agent configured"));
        return;
      }
      if (!model || !handler) {
        done(new Error("no model or handler: set them on the node or in msg.model/msg.handler"));
        return;
      }
      const call = calls.start(node.timeout);
      node.status({ fill: "blue", shape: "dot", text: `${model}/${handler}` });
      try {
        const { body, type } = encode(msg.payload, node.send_as);
        const url = joinUrl(
          node.agent.url,
          `/models/${encodeURIComponent(model)}/${handler.split("/").map(encodeURIComponent).join("/")}`,
        );
        const response = await fetch(url, {
          method: "POST",
          headers: { "content-type": type, accept: "application/json, */*" },
          body,
          signal: call.signal,
        });
        const answer = await readBody(response);
        msg.statusCode = response.status;
        msg.headers = headersObject(response.headers);
        msg.duration = call.elapsedMs();
        msg.version = response.headers.get("x-modelyard-version") || undefined;
        msg.payload = answer;
        if (!response.ok) {
          const message = describeError(response.status, answer);
          node.status({ fill: "red", shape: "ring", text: message.slice(0, 40) });
          done(new ModelyardError(`${model}/${handler}: ${message}`, { status: response.status, body: answer }));
          return;
        }
        node.status({ fill: "green", shape: "dot", text: `${response.status} in ${Math.round(msg.duration)} ms` });
        send(msg);
        done();
      } catch (err) {
        const reason = call.failure(err);
        node.status({ fill: "red", shape: "ring", text: reason.slice(0, 40) });
        done(new ModelyardError(`${model}/${handler}: ${reason}`, { reason }));
      } finally {
        call.end();
      }
    });
  }
  RED.nodes.registerType("modelyard-device-model", DeviceModelNode);
};
