/**
 * A small typed walk through the APIs, as a frontend would write it. It only has to compile
 * under `tsc --strict` (tests/test_typescript_clients.py checks that): if a generated type
 * degrades to `unknown`, the assignments below stop compiling.
 */
import {
  deployerClient,
  describeProblem,
  gatewayClient,
  isProblem,
  registryClient,
  type Registry,
} from "../src/index.ts";

type AIModel = Registry.components["schemas"]["AIModelRead"];

export async function registerAndDeploy(token: string, deviceName: string): Promise<string[]> {
  const registry = registryClient({ baseUrl: "http://127.0.0.1:8001", token });
  const deployer = deployerClient({ baseUrl: "http://127.0.0.1:8002", token });

  const created = await registry.POST("/v1/models", {
    body: { name: "echo-chat", learning_type: "supervised", tags: ["demo"] },
    headers: { "Idempotency-Key": crypto.randomUUID() },
  });
  if (!created.data) {
    throw new Error(isProblem(created.error) ? describeProblem(created.error) : "create failed");
  }
  const model: AIModel = created.data;
  const etag: string = model.etag;

  const updated = await registry.PATCH("/v1/models/{model_id}", {
    params: { path: { model_id: model.id }, header: { "If-Match": etag } },
    body: { provider: "in-house" },
  });
  const provider: string | null | undefined = updated.data?.provider;
  console.log("provider", provider);

  const page = await registry.GET("/v1/models", { params: { query: { tag: ["demo"], limit: 10 } } });
  const names: string[] = (page.data?.items ?? []).map((m) => m.name);
  const next: string | null | undefined = page.data?.next_cursor;
  console.log(names, next);

  const versions = await deployer.GET("/v1/models/{model_id}/versions", {
    params: { path: { model_id: model.id } },
  });
  const latest = versions.data?.items[0];
  const devices = await deployer.GET("/v1/devices", {
    params: { query: { name: deviceName, status: "online" } },
  });
  const deviceIds: string[] = (devices.data?.items ?? []).map((d) => d.id);
  if (!latest) return [];

  const batch = await deployer.POST("/v1/deployments", {
    body: { version_id: latest.id, device_ids: deviceIds },
  });
  const states: string[] = (batch.data?.items ?? []).map((d) => `${d.device_name}: ${d.state}`);
  return states;
}

export async function chat(key: string, group: string, prompt: string): Promise<string> {
  const gateway = gatewayClient({ baseUrl: "http://127.0.0.1:8000", token: key });
  const groups = await gateway.GET("/v1/models");
  const known: string[] = (groups.data?.data ?? []).map((g) => g.id);
  if (!known.includes(group)) throw new Error(`no group ${group}`);
  const answer = await gateway.POST("/v1/chat/completions", {
    body: { model: group, messages: [{ role: "user", content: prompt }] },
  });
  return JSON.stringify(answer.data);
}
