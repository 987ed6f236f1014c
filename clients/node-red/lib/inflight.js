"use strict";
// What the `device model` and `gateway chat` nodes share: their creation, and around each call a timeout of its own,
// the abort of every call in flight when the flow stops, the time it took, and why it failed.
const { causeOf } = require("./http");

/** Return the node's timeout in seconds: its configured one when positive, else `fallback`. */
function timeoutOf(config, fallback) {
  return Number(config.timeout) > 0 ? Number(config.timeout) : fallback;
}

/**
 * Return a tracker of `node`'s calls in flight: `start(timeoutS)` begins one; closing the node
 * (flow stopped or redeployed) aborts them all and clears the node's status.
 */
function inflightCalls(node) {
  const inflight = new Set();
  node.on("close", () => {
    for (const controller of inflight) {
      controller.abort(new Error("flow stopped"));
    }
    inflight.clear();
    node.status({});
  });
  return {
    /** Begin a call aborted after `timeoutS` seconds; `end()` it when it is over. */
    start(timeoutS) {
      const controller = new AbortController();
      inflight.add(controller);
      const timer = setTimeout(() => controller.abort(new Error("timed out")), timeoutS * 1000);
      const started = process.hrtime.bigint();
      return {
        signal: controller.signal,
        /** Return the milliseconds since the call began. */
        elapsedMs: () => Number(process.hrtime.bigint() - started) / 1e6,
        /** Return whether the call was aborted (timed out, or the flow stopped). */
        aborted: () => controller.signal.aborted,
        /** Return why the call failed: the abort's reason, else the error with its cause. */
        failure: (err) =>
          controller.signal.aborted ? String(controller.signal.reason?.message || "aborted") : causeOf(err),
        end() {
          clearTimeout(timer);
          inflight.delete(controller);
        },
      };
    },
  };
}

/**
 * Create `node`, a node that calls a service through its config node `config[configKey]`: set
 * `node[configKey]` to that config node and `node.timeout` to its timeout in seconds (`fallback`
 * unless configured). Return the tracker of its calls in flight.
 */
function createCallingNode(RED, node, config, configKey, fallback) {
  RED.nodes.createNode(node, config);
  node[configKey] = RED.nodes.getNode(config[configKey]);
  node.timeout = timeoutOf(config, fallback);
  return inflightCalls(node);
}

module.exports = { timeoutOf, inflightCalls, createCallingNode };
