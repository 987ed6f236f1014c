/**
 * Typed clients of the Modelyard services for frontend code.
 *
 * The `paths`/`components` types are generated from each service's /openapi.json by
 * openapi-typescript (`make clients`); never edit src/registry.ts, src/deployer.ts or
 * src/gateway.ts by hand. The clients are openapi-fetch instances: every path, parameter,
 * body and answer is checked by the compiler.
 */
import createClient, { type Client, type Middleware } from "openapi-fetch";

import type * as Deployer from "./deployer.ts";
import type * as Gateway from "./gateway.ts";
import type * as Registry from "./registry.ts";

export type { Deployer, Gateway, Registry };

/** An RFC 9457 problem document, as every Modelyard service answers errors. */
export type Problem = Registry.components["schemas"]["Problem"];

export interface ClientOptions {
  /** e.g. "http://127.0.0.1:8001" for the registry. */
  baseUrl: string;
  /** A bearer token: a person's JWT for the admin APIs, a client key (sk-...) for /v1/chat. */
  token?: string | (() => string | Promise<string>);
  fetch?: typeof globalThis.fetch;
}

function bearer(token: ClientOptions["token"]): Middleware {
  return {
    async onRequest({ request }) {
      const value = typeof token === "function" ? await token() : token;
      if (value) request.headers.set("Authorization", `Bearer ${value}`);
      return request;
    },
  };
}

function client<Paths extends {}>(options: ClientOptions): Client<Paths> {
  const created = createClient<Paths>({
    baseUrl: options.baseUrl,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  if (options.token) created.use(bearer(options.token));
  return created;
}

/** Return a typed client of the registry (models, systems, links, history). */
export const registryClient = (options: ClientOptions): Client<Registry.paths> =>
  client<Registry.paths>(options);

/** Return a typed client of the deployer (versions, devices, deployments, access). */
export const deployerClient = (options: ClientOptions): Client<Deployer.paths> =>
  client<Deployer.paths>(options);

/** Return a typed client of the gateway (groups, instances, keys, the OpenAI API). */
export const gatewayClient = (options: ClientOptions): Client<Gateway.paths> =>
  client<Gateway.paths>(options);

/** Return whether an error body is a problem document (narrows `unknown` safely). */
export function isProblem(body: unknown): body is Problem {
  return (
    typeof body === "object" &&
    body !== null &&
    typeof (body as { status?: unknown }).status === "number" &&
    typeof (body as { title?: unknown }).title === "string"
  );
}

/** Return a problem as one line, invalid fields included (what the CLI prints). */
export function describeProblem(problem: Problem): string {
  const fields = (problem.errors ?? []).map((e) => `${e.field}: ${e.message}`).join("; ");
  return `${problem.status} ${problem.title}${problem.detail ? `: ${problem.detail}` : ""}${
    fields ? ` (${fields})` : ""
  }`;
}
