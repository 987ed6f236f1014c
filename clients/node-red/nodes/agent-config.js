"use strict";
// Configuration node: the device agent's local API (default http://127.0.0.1:8003), and the
// editor endpoint the `device model` node fills its drop-downs from.
const { joinUrl, readBody, describeError, isHttpUrl } = require("../lib/http");

const DEFAULT_URL = "http://127.0.0.1:8003";
const LIST_TIMEOUT_MS = 5000;

/** Return the agent's `GET /models` items (model name, handlers, state, versions). */
async function listModels(url) {
  const response = await fetch(joinUrl(url, "/models"), {
    headers: { accept: "application/json" },
    signal: AbortSignal.timeout(LIST_TIMEOUT_MS),
  });
  const body = await readBody(response);
  if (!response.ok) {
    throw new Error(describeError(response.status, body));
  }
  return body && Array.isArray(body.items) ? body.items : [];
}

module.exports = function (RED) {
  function ModelyardAgentNode(config) {
    RED.nodes.createNode(this, config);
    this.name = config.name;
    this.url = (config.url || DEFAULT_URL).trim();
  }
  RED.nodes.registerType("modelyard-agent", ModelyardAgentNode);

  // Edit time: the editor asks for the models of a deployed agent config node (`id`) or of the
  // URL typed in a config node not deployed yet (`url`). Answers what the agent's /models says.
  RED.httpAdmin.get(
    "/modelyard/agent/models",
    RED.auth.needsPermission("modelyard-agent.read"),
    async (req, res) => {
      const configured = req.query.id ? RED.nodes.getNode(String(req.query.id)) : null;
      const url = configured ? configured.url : String(req.query.url || DEFAULT_URL).trim();
      if (!isHttpUrl(url)) {
        res.status(400).json({ error: "the agent URL must be http(s)" });
        return;
      }
      try {
        const items = await listModels(url);
        res.json({
          items: items.map((m) => ({
            model_name: m.model_name,
            handlers: m.handlers || [],
            running: Boolean(m.running),
            state: m.state,
            version_number: m.version_number,
          })),
        });
      } catch (err) {
        res.status(502).json({ error: `cannot list the models of ${url}: ${err.message}` });
      }
    },
  );
};

module.exports.DEFAULT_URL = DEFAULT_URL;
module.exports.listModels = listModels;
