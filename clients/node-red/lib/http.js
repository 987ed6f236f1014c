"use strict";
// What the Modelyard nodes share: URLs, reading answers, turning error bodies into messages,
// and reading a server-sent event stream. Node 20's global fetch only (no dependencies).

/** Return `base` joined with `path` (one slash between them). */
function joinUrl(base, path) {
  return `${String(base).replace(/\/+$/, "")}/${String(path).replace(/^\/+/, "")}`;
}

/** Return the headers of a fetch Response as a plain object (lower-case names). */
function headersObject(headers) {
  const out = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

/** Return the body of a fetch Response: parsed JSON, text, or a Buffer (anything else). */
async function readBody(response) {
  const type = (response.headers.get("content-type") || "").toLowerCase();
  const raw = Buffer.from(await response.arrayBuffer());
  if (/[/+]json\b/.test(type)) {
    try {
      return raw.length ? JSON.parse(raw.toString("utf8")) : null;
    } catch {
      return raw.toString("utf8");
    }
  }
  if (type.startsWith("text/")) {
    return raw.toString("utf8");
  }
  return raw;
}

/**
 * Return a one-line explanation of an error answer: an RFC 9457 problem (the agent and the
 * admin APIs), an OpenAI-shaped error (the gateway) or whatever text came back.
 */
function describeError(status, body) {
  if (body && typeof body === "object" && !Buffer.isBuffer(body)) {
    if (body.error && typeof body.error === "object") {
      const code = body.error.code ? ` (${body.error.code})` : "";
      return `${status}${code}: ${body.error.message || "error"}`;
    }
    if (body.title || body.detail) {
      return `${status} ${body.title || ""}: ${body.detail || ""}`.trim();
    }
  }
  if (typeof body === "string" && body) {
    return `${status}: ${body.slice(0, 500)}`;
  }
  return `HTTP ${status}`;
}

/** An Error carrying the HTTP status and the parsed body of a failed call. */
class ModelyardError extends Error {
  constructor(message, { status, body, reason } = {}) {
    super(message);
    this.name = "ModelyardError";
    this.status = status;
    this.body = body;
    this.reason = reason;
  }
}

/**
 * Yield the `data:` payloads of a server-sent event stream (a fetch Response body), one per
 * event, as strings (`[DONE]` included).
 */
async function* sseData(body) {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true });
    let cut;
    while ((cut = pending.search(/\r?\n\r?\n/)) >= 0) {
      const data = dataOf(pending.slice(0, cut));
      pending = pending.slice(cut).replace(/^\r?\n\r?\n/, "");
      if (data) {
        yield data;
      }
    }
  }
  pending += decoder.decode();
  const tail = dataOf(pending);
  if (tail) {
    yield tail;
  }
}

/** Return the payload of one server-sent event: its `data:` lines joined ("" when none). */
function dataOf(event) {
  return event
    .split(/\r?\n/)
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).replace(/^ /, ""))
    .join("\n");
}

/** Return an error's message with its cause (fetch says only "fetch failed"). */
function causeOf(err) {
  const cause = err && err.cause;
  const detail = cause && (cause.code || cause.message);
  return detail ? `${err.message} (${detail})` : String((err && err.message) || err);
}

/** Return true when `value` is an absolute http(s) URL. */
function isHttpUrl(value) {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

module.exports = { joinUrl, headersObject, readBody, describeError, ModelyardError, sseData, isHttpUrl, causeOf };
