/** The registry as the console reaches it: the typed client, a token and a workspace. */
import {
  type Deployer,
  deployerClient,
  gatewayClient,
  type Gateway,
  isProblem,
  type Problem,
  type Registry,
  registryClient,
} from "@modelyard/clients";

export type Model = Registry.components["schemas"]["AIModelRead"];
export type ModelCreate = Registry.components["schemas"]["AIModelCreate"];
export type LearningType = Registry.components["schemas"]["LearningTypeRead"];
export type Approval = Registry.components["schemas"]["ApprovalRead"];
export type ApprovalState = Registry.components["schemas"]["ApprovalState"];
export type HistoryEntry = Registry.components["schemas"]["HistoryEntryRead"];
export type SystemLink = Registry.components["schemas"]["ModelSystemLinkRead"];
export type System = Registry.components["schemas"]["AISystemRead"];
export type SystemCreate = Registry.components["schemas"]["AISystemCreate"];
export type RiskLevel = Registry.components["schemas"]["RiskLevel"];
export type AIActRole = Registry.components["schemas"]["AIActRole"];
export type LinkRead = Registry.components["schemas"]["LinkRead"];
export type Group = Gateway.components["schemas"]["GroupRead"];
export type GroupCreate = Gateway.components["schemas"]["GroupCreate"];
export type Instance = Gateway.components["schemas"]["InstanceRead"];
export type InstanceCreate = Gateway.components["schemas"]["InstanceCreate"];
export type InstanceCheck = Gateway.components["schemas"]["InstanceCheck"];
export type Device = Deployer.components["schemas"]["Device"];
export type DeviceStatus = Deployer.components["schemas"]["DeviceStatus"];
export type Deployment = Deployer.components["schemas"]["Deployment"];

/** An answer that was not a success: a problem document, or no answer at all (offline). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
  ) {
    super(
      status === 0
        ? "The service cannot be reached. Check your connection and try again."
        : (problem?.detail ?? problem?.title ?? `HTTP ${status}`),
    );
  }

  /**
   * Return the message of each invalid field, by field name (a problem's `errors`); an error in
   * one item of a list is also kept by the list's name and the item's index (`waves.1`).
   */
  fieldErrors(): Record<string, string> {
    const fields: Record<string, string> = {};
    const add = (name: string, message: string) => (fields[name] = fields[name] ? `${fields[name]}; ${message}` : message);
    for (const error of this.problem?.errors ?? []) {
      const [name = error.field, index] = error.field.replace(/^body\./, "").split(".");
      const message = humanMessage(error.type, error.message);
      add(name, message);
      if (index !== undefined && /^\d+$/.test(index)) add(`${name}.${index}`, message);
    }
    return fields;
  }

  get offline(): boolean {
    return this.status === 0;
  }
}

/** Return a field error as a person reads it (a regular expression means nothing to them). */
function humanMessage(type: string, message: string): string {
  if (type === "string_pattern_mismatch") {
    return "Not accepted: it cannot be blank (spaces only) or hold control characters.";
  }
  if (type === "missing") return "Required.";
  return message;
}

export type Registry_ = ReturnType<typeof registryClient>;
export type Gateway_ = ReturnType<typeof gatewayClient>;
export type Deployer_ = ReturnType<typeof deployerClient>;

/** Return `client` with every request made in `workspace` (the services' workspace header). */
function inWorkspace<C extends { use: Registry_["use"] }>(client: C, workspace: string): C {
  client.use({
    onRequest({ request }) {
      request.headers.set("X-Modelyard-Workspace", workspace);
      return request;
    },
  });
  return client;
}

/** Return a registry client acting for `token` in `workspace`. */
type Token = string | (() => string);

export const registryFor = (baseUrl: string, token: Token, workspace: string): Registry_ =>
  inWorkspace(registryClient({ baseUrl, token }), workspace);

/** Return a deployer client acting for `token` in `workspace`. */
export const deployerFor = (baseUrl: string, token: Token, workspace: string): Deployer_ =>
  inWorkspace(deployerClient({ baseUrl, token }), workspace);

/** Return a gateway client (its admin API) acting for `token` in `workspace`. */
export const gatewayFor = (baseUrl: string, token: Token, workspace: string): Gateway_ =>
  inWorkspace(gatewayClient({ baseUrl, token }), workspace);

/** Return a call's data, or throw an ApiError carrying its problem (status 0: offline). */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<{ data: T; response: Response }> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await call;
  } catch {
    throw new ApiError(0, null);
  }
  if (result.error !== undefined || !result.response.ok) {
    const problem = isProblem(result.error) ? result.error : null;
    throw new ApiError(result.response.status, problem);
  }
  return { data: result.data as T, response: result.response };
}

/** Return the items of a list call's page (or throw its ApiError, as `unwrap`). */
export async function itemsOf<T>(call: Promise<{ data?: { items: T[] }; error?: unknown; response: Response }>): Promise<T[]> {
  return (await unwrap(call)).data.items;
}

/** Return the systems a 409 names (a model still used by AI systems), if it names any. */
export function systemsNamed(error: ApiError): { id: string; name: string }[] {
  const systems = (error.problem as { systems?: unknown } | null)?.systems;
  return Array.isArray(systems)
    ? systems.filter(
        (s): s is { id: string; name: string } =>
          typeof s === "object" && s !== null && typeof (s as { name?: unknown }).name === "string",
      )
    : [];
}

export type ModelVersion = Deployer.components["schemas"]["ModelVersion"];
export type Manifest = Deployer.components["schemas"]["Manifest"];
export type DeploymentHistoryEntry = Deployer.components["schemas"]["HistoryEntry"];
export type ApiKey = Gateway.components["schemas"]["KeyRead"];
export type ApiKeyCreated = Gateway.components["schemas"]["KeyCreated"];
export type LimitValues = Gateway.components["schemas"]["LimitValues"];
export type WorkspaceLimits = Gateway.components["schemas"]["WorkspaceLimitsRead"];
export type LoggedRequest = Gateway.components["schemas"]["LoggedRequest"];

type VersionUpload = Deployer.operations["create_model_version"];
/** The form `POST /v1/models/{model_id}/versions` takes, as the typed client defines it. */
export type VersionForm = Omit<VersionUpload["requestBody"]["content"]["multipart/form-data"], "file"> & {
  file: Blob;
};
type VersionCreated = VersionUpload["responses"][201]["content"]["application/json"];

/**
 * Upload a version (multipart) and report the bytes sent as they go; return the created version.
 *
 * The one call not made through openapi-fetch: `fetch` cannot report upload progress, so this
 * is an XMLHttpRequest, with the path, the form and the answer typed from the same generated
 * types as the client's; errors become the same ApiError.
 */
export function uploadVersion(options: {
  baseUrl: string;
  token: string;
  workspace: string;
  modelId: string;
  form: VersionForm;
  idempotencyKey: string;
  onProgress: (sent: number, total: number) => void;
  /** Aborts the upload (the person closed the dialog). */
  signal?: AbortSignal;
}): Promise<VersionCreated> {
  const path: keyof Deployer.paths = "/v1/models/{model_id}/versions";
  // As openapi-fetch builds it: the base URL (which may carry a path prefix), then the path.
  const url = options.baseUrl.replace(/\/$/, "") + path.replace("{model_id}", encodeURIComponent(options.modelId));
  const body = new FormData();
  for (const [name, value] of Object.entries(options.form)) {
    if (value !== undefined) body.append(name, value as Blob | string);
  }
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Authorization", `Bearer ${options.token}`);
    xhr.setRequestHeader("X-Modelyard-Workspace", options.workspace);
    xhr.setRequestHeader("Idempotency-Key", options.idempotencyKey);
    xhr.responseType = "text";
    xhr.upload.onprogress = (e) => options.onProgress(e.loaded, e.lengthComputable ? e.total : options.form.file.size);
    xhr.onerror = () => reject(new ApiError(0, null));
    xhr.onload = () => {
      let answer: unknown = null;
      try {
        answer = JSON.parse(xhr.responseText);
      } catch {
        answer = null;
      }
      if (xhr.status === 201) resolve(answer as VersionCreated);
      else reject(new ApiError(xhr.status, isProblem(answer) ? answer : null));
    };
    xhr.onabort = () => reject(new DOMException("The upload was cancelled.", "AbortError"));
    options.signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(body);
  });
}
export type Rollout = Deployer.components["schemas"]["Rollout"];
export type RolloutSummary = Deployer.components["schemas"]["RolloutSummary"];
export type RolloutEvent = Deployer.components["schemas"]["RolloutEvent"];
export type RolloutState = Deployer.components["schemas"]["RolloutState"];
export type AccessGrant = Deployer.components["schemas"]["Grant"];
export type ProvisioningToken = Deployer.components["schemas"]["ProvisioningToken"];
export type ModelUsage = Registry.components["schemas"]["ModelUsage"];
export type ProvisioningTokenWithSecret = Deployer.components["schemas"]["ProvisioningTokenWithSecret"];
export type Policy = Registry.components["schemas"]["PolicyRead"];
export type Evidence = Registry.components["schemas"]["EvidenceRead"];
export type EvidenceType = Registry.components["schemas"]["EvidenceType"];
export type Obligation = Registry.components["schemas"]["ObligationRead"];
export type ObligationStatus = Registry.components["schemas"]["ObligationStatus"];
