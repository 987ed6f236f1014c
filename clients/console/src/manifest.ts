/**
 * A project zip's run manifest, read in the browser before anything is sent: the deployer reads
 * `modelyard.json`, `modelyard.yaml` or `modelyard.yml` at the zip's root, so the console reads
 * the same file and checks it by the same rules (libs/common's Manifest), so a person sees what
 * will run, and a zip the deployer would refuse is never uploaded. The zip and YAML readers are
 * loaded only when a person picks a file (not part of the console's first load).
 */
import type { Manifest } from "./api.ts";

export const MANIFEST_FILENAMES = ["modelyard.json", "modelyard.yaml", "modelyard.yml"];
const MAX_MANIFEST_BYTES = 256 * 1024;

export type ManifestReading =
  | { ok: true; filename: string; manifest: Manifest }
  | { ok: false; message: string; problems: string[] };

const KNOWN = new Set([
  "image", "dockerfile", "language", "main", "handlers", "input_type", "port", "max_ram_mb",
  "cores", "env", "health_path", "protocol", "run_as_root",
]);
const HANDLER = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const IMAGE = /^[a-z0-9][a-z0-9._/:@-]{0,254}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** Return the manifest of a project zip, or why it cannot be used (said as a person reads it). */
export async function readProjectManifest(file: File): Promise<ManifestReading> {
  const { unzipSync } = await import("fflate");
  let entries: Record<string, Uint8Array>;
  try {
    const data = new Uint8Array(await file.arrayBuffer());
    // Only the root's manifest files are inflated (the weights stay compressed).
    entries = unzipSync(data, { filter: (entry) => MANIFEST_FILENAMES.includes(entry.name) && entry.originalSize <= MAX_MANIFEST_BYTES });
  } catch {
    return { ok: false, message: "This file is not a zip archive that can be read.", problems: [] };
  }
  const filename = MANIFEST_FILENAMES.find((name) => name in entries);
  if (!filename) {
    return {
      ok: false,
      message: `This zip has no run manifest: put ${MANIFEST_FILENAMES.slice(0, 2).join(" or ")} at the root of the zip (not in a folder).`,
      problems: [],
    };
  }
  let document: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(entries[filename]);
    if (filename.endsWith(".json")) {
      document = JSON.parse(text);
    } else {
      const { parse } = await import("yaml");
      // Anchors and aliases are no part of a manifest (the deployer refuses them too).
      document = parse(text, { maxAliasCount: 0 });
    }
  } catch (error) {
    const detail = error instanceof Error ? error.message.split("\n")[0] : "";
    return { ok: false, message: `${filename} cannot be read: ${detail}`, problems: [] };
  }
  const problems = manifestProblems(document);
  if (problems.length) {
    return { ok: false, message: `${filename} is not a valid run manifest:`, problems };
  }
  return { ok: true, filename, manifest: document as Manifest };
}

/** Return what is wrong with a manifest document, one sentence per problem (none: it is valid). */
export function manifestProblems(document: unknown): string[] {
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    return ["It must be a mapping of fields (image, port, handlers, …)."];
  }
  const m = document as Record<string, unknown>;
  const problems: string[] = [];
  const unknown = Object.keys(m).filter((key) => !KNOWN.has(key));
  if (unknown.length) problems.push(`Unknown field${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")}.`);
  const image = m.image ?? null;
  const dockerfile = m.dockerfile ?? false;
  if (typeof dockerfile !== "boolean") problems.push("dockerfile: must be true or false.");
  if (image !== null && (typeof image !== "string" || !IMAGE.test(image))) problems.push("image: not a valid image reference.");
  if ((image !== null) === (dockerfile === true)) problems.push("Give exactly one of image or dockerfile: true.");
  const number = (key: string, min: number, max: number, integer: boolean) => {
    const value = m[key];
    if (value === undefined) return;
    if (typeof value !== "number" || (integer && !Number.isInteger(value)) || value < min || value > max) {
      problems.push(`${key}: must be ${integer ? "a whole number" : "a number"} from ${min} to ${max}.`);
    }
  };
  number("port", 1, 65535, true);
  number("max_ram_mb", 16, 1_048_576, true);
  number("cores", 0.01, 256, false);
  const oneOf = (key: string, allowed: string[]) => {
    if (m[key] !== undefined && !allowed.includes(m[key] as string)) problems.push(`${key}: one of ${allowed.join(", ")}.`);
  };
  oneOf("protocol", ["handlers", "openai"]);
  oneOf("input_type", ["json", "image"]);
  if (m.health_path !== undefined && (typeof m.health_path !== "string" || !m.health_path.startsWith("/"))) {
    problems.push("health_path: a path starting with /.");
  }
  if (m.main !== undefined) {
    const parts = typeof m.main === "string" ? m.main.replace(/\\/g, "/").split("/") : [];
    if (typeof m.main !== "string" || m.main.startsWith("/") || parts.includes("..") || parts.includes("")) {
      problems.push("main: a relative path inside the project.");
    }
  }
  const handlers = m.handlers ?? [];
  if (!Array.isArray(handlers)) {
    problems.push("handlers: a list of {name, description}.");
  } else {
    for (const h of handlers) {
      const name = (h as { name?: unknown } | null)?.name;
      if (typeof name !== "string" || !HANDLER.test(name)) problems.push(`handlers: ${JSON.stringify(name ?? h)} is not a Python function name.`);
    }
    if ((m.protocol ?? "handlers") === "handlers" && handlers.length === 0) {
      problems.push("A handlers-protocol project lists at least one handler.");
    }
  }
  if (m.env !== undefined) {
    if (typeof m.env !== "object" || m.env === null || Array.isArray(m.env)) problems.push("env: a mapping of names to values.");
    else for (const key of Object.keys(m.env)) if (!ENV_NAME.test(key)) problems.push(`env: ${key} is not a valid variable name.`);
  }
  return problems;
}
