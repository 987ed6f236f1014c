// Node-RED settings of the compose device's Node-RED (clients/node-red/Dockerfile): the Modelyard
// nodes load from their directory; the editor listens where NODE_RED_HOST/NODE_RED_PORT say
// (loopback by default, like the agent's local API it calls).
module.exports = {
  uiHost: process.env.NODE_RED_HOST || "127.0.0.1",
  uiPort: Number(process.env.NODE_RED_PORT || 1880),
  flowFile: "flows.json",
  nodesDir: ["/opt/modelyard/node-red-modelyard"],
  // Credentials (the gateway's API key) are encrypted with this key; unset, Node-RED makes one
  // and keeps it in /data/.config.runtime.json.
  ...(process.env.NODE_RED_CREDENTIAL_SECRET ? { credentialSecret: process.env.NODE_RED_CREDENTIAL_SECRET } : {}),
  logging: { console: { level: "info", metrics: false, audit: false } },
  editorTheme: { projects: { enabled: false } },
};
