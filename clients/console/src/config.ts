/** What the console is told where it is served: the services' URLs and how people sign in. */
export interface ConsoleConfig {
  registry_url: string;
  deployer_url: string;
  gateway_url: string;
  /** True only when the services run with MODELYARD_ENV=dev (HS256 development tokens). */
  dev_sign_in: boolean;
  /** The organisation's OpenID issuer and this console's public client, if configured. */
  oidc: { issuer: string; client_id: string; audience: string; scope?: string } | null;
  /** The claim mapping the services use (MODELYARD_OIDC_*_CLAIM). */
  workspaces_claim?: string;
  roles_claim?: string;
  role_prefix?: string;
}

/** Return the console's configuration, served beside it as /config.json. */
export async function loadConfig(): Promise<ConsoleConfig> {
  const response = await fetch(new URL("config.json", document.baseURI), { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  return (await response.json()) as ConsoleConfig;
}
