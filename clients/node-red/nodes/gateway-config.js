"use strict";
// Configuration node: the gateway's OpenAI-compatible API (URL) and a client API key, kept as
// Node-RED credentials (never exported with the flow). Registers the editor endpoint the
// `gateway chat` node fills its group drop-down from (`GET /v1/models` with the key).
const { joinUrl, readBody, describeError, isHttpUrl } = require("../lib/http");

const DEFAULT_URL = "http://127.0.0.1:8000";
const LIST_TIMEOUT_MS = 5000;
// What the editor sends for a password credential it did not change.
const UNCHANGED = "__PWRD__";

/** Return the names of the model groups `key` may use. */
async function listGroups(url, key) {
  const response = await fetch(joinUrl(url, "/v1/models"), {
    headers: { accept: "application/json", authorization: `Bearer ${key}` },
    signal: AbortSignal.timeout(LIST_TIMEOUT_MS),
  });
  const body = await readBody(response);
  if (!response.ok) {
    throw new Error(describeError(response.status, body));
  }
  return (body && Array.isArray(body.data) ? body.data : []).map((m) => m.id);
}

module.exports = function (RED) {
  function ModelyardGatewayNode(config) {
    RED.nodes.createNode(this, config);
    this.name = config.name;
    this.url = (config.url || DEFAULT_URL).trim();
    this.apiKey = (this.credentials && this.credentials.apiKey) || "";
  }
  RED.nodes.registerType("modelyard-gateway", ModelyardGatewayNode, {
    credentials: { apiKey: { type: "password" } },
  });

  // Edit time: `id` names the gateway config node (deployed or not yet); `url` and `key` are what
  // the config dialog holds now. A key left unchanged in the editor is read from the stored
  // credentials, so it never has to travel back to the browser.
  RED.httpAdmin.post(
    "/modelyard/gateway/groups",
    RED.auth.needsPermission("modelyard-gateway.read"),
    async (req, res) => {
      const body = req.body || {};
      const id = body.id ? String(body.id) : "";
      const deployed = id ? RED.nodes.getNode(id) : null;
      const stored = id ? RED.nodes.getCredentials(id) : null;
      const url = String(body.url || (deployed && deployed.url) || DEFAULT_URL).trim();
      let key = body.key && body.key !== UNCHANGED ? String(body.key) : "";
      if (!key) {
        key = (stored && stored.apiKey) || (deployed && deployed.apiKey) || "";
      }
      if (!isHttpUrl(url)) {
        res.status(400).json({ error: "the gateway URL must be http(s)" });
        return;
      }
      if (!key) {
        res.status(400).json({ error: "no API key: set one on the gateway configuration node" });
        return;
      }
      try {
        res.json({ groups: await listGroups(url, key) });
      } catch (err) {
        res.status(502).json({ error: `cannot list the groups of ${url}: ${err.message}` });
      }
    },
  );
};

module.exports.DEFAULT_URL = DEFAULT_URL;
module.exports.listGroups = listGroups;
