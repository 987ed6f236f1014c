/**
 * Sign-in: OpenID Connect authorization code with PKCE (oidc-client-ts), or in dev mode a
 * development token pasted from `modelyard dev-token`. The token's claims are read (not
 * verified: the services verify) only to offer what the person may do.
 */
import { type User, UserManager, WebStorageStateStore } from "oidc-client-ts";

import type { ConsoleConfig } from "./config.ts";

export type Role = "viewer" | "editor" | "admin";
const LEVEL: Record<Role, number> = { viewer: 1, editor: 2, admin: 3 };
const DEV_TOKEN_KEY = "modelyard.console.dev-token";
const WORKSPACE_KEY = "modelyard.console.workspace";

export interface Session {
  /** The current access token: renewed in place before it expires (see `Auth.keepRenewed`). */
  token: string;
  sub: string;
  workspaces: string[];
  /** Roles as the token states them (`role` everywhere, or `workspace:role`). */
  roles: string[];
  method: "oidc" | "dev";
  expiresAt: number | null;
}

function claimAt(claims: Record<string, unknown>, path: string): unknown {
  if (path in claims) return claims[path];
  let value: unknown = claims;
  for (const part of path.split(".")) {
    if (typeof value !== "object" || value === null || !(part in value)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function strings(value: unknown): string[] {
  if (typeof value === "string") return value ? [value] : [];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string" && !!v) : [];
}

/** Return a JWT's claims (base64url JSON), or null when it is not a JWT. */
export function jwtClaims(token: string): Record<string, unknown> | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  } catch {
    return null;
  }
}

function sessionOf(token: string, method: Session["method"], config: ConsoleConfig): Session | null {
  const claims = jwtClaims(token);
  if (!claims) return null;
  // Development tokens use the default claim names; an issuer's use the configured mapping.
  const dev = method === "dev";
  const prefix = dev ? "" : (config.role_prefix ?? "");
  const workspaces = strings(
    claimAt(claims, dev ? "workspaces" : (config.workspaces_claim ?? "workspaces")),
  );
  if (dev && workspaces.length === 0) workspaces.push(...strings(claims.workspace));
  const roles = strings(claimAt(claims, dev ? "roles" : (config.roles_claim ?? "roles"))).map(
    (r) => (prefix && r.startsWith(prefix) ? r.slice(prefix.length) : r),
  );
  const exp = typeof claims.exp === "number" ? claims.exp * 1000 : null;
  return {
    token,
    sub: typeof claims.sub === "string" ? claims.sub : "?",
    workspaces,
    roles,
    method,
    expiresAt: exp,
  };
}

/** Return the roles a session holds in one workspace (scoped `ws:role` apply only there). */
export function rolesIn(session: Session, workspace: string): Set<string> {
  const held = new Set<string>();
  for (const role of session.roles) {
    const at = role.lastIndexOf(":");
    if (at < 0) held.add(role);
    else if (role.slice(0, at) === workspace) held.add(role.slice(at + 1));
  }
  return held;
}

/** Return whether the session's highest workspace role in `workspace` is at least `role`. */
export function hasRole(session: Session, workspace: string, role: Role): boolean {
  const held = rolesIn(session, workspace);
  const level = Math.max(1, ...[...held].map((r) => LEVEL[r as Role] ?? 0));
  return level >= LEVEL[role];
}

/** Return whether the session may decide approvals in `workspace` (approver, or admin). */
export function canDecide(session: Session, workspace: string): boolean {
  return rolesIn(session, workspace).has("approver") || hasRole(session, workspace, "admin");
}

export class Auth {
  readonly manager: UserManager | null;

  constructor(readonly config: ConsoleConfig) {
    const base = new URL(".", document.baseURI).href;
    this.manager = config.oidc
      ? new UserManager({
          authority: config.oidc.issuer,
          client_id: config.oidc.client_id,
          redirect_uri: base,
          post_logout_redirect_uri: base,
          response_type: "code",
          scope: config.oidc.scope ?? "openid",
          // RFC 8707: ask for an access token for the services' audience.
          extraQueryParams: { resource: config.oidc.audience },
          extraTokenParams: { resource: config.oidc.audience },
          userStore: new WebStorageStateStore({ store: window.sessionStorage }),
          // Renewed by keepRenewed (a refresh token grant), timed from each token's lifetime.
          automaticSilentRenew: false,
        })
      : null;
  }

  private renewTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Keep an OpenID session's access token fresh: at three quarters of its lifetime, ask the
   * issuer for a new one (the refresh token grant; oidc-client-ts's `signinSilent`) and put it
   * in `session.token` in place, so every client (which reads the token per request) goes on
   * working in a console left open. A failed renewal is tried again every few seconds until the
   * token expires; then the services answer 401 and `onExpired` asks the person to sign in.
   */
  keepRenewed(session: Session, user: User, onExpired: () => void): void {
    clearTimeout(this.renewTimer);
    if (session.method !== "oidc" || !this.manager) return;
    const manager = this.manager;
    const resource = this.config.oidc?.audience;
    // Without a refresh token (an issuer that gives none to public clients) nothing can renew
    // it without a page: the person signs in again when it expires.
    if (!user.refresh_token) return;
    const lifetime = (user.expires_in ?? 0) * 1000;
    const schedule = (delay: number) => {
      this.renewTimer = setTimeout(renew, Math.max(1000, delay));
    };
    const renew = async () => {
      try {
        const fresh = await manager.signinSilent(resource ? { resource } : {});
        if (!fresh) throw new Error("no token");
        session.token = fresh.access_token;
        session.expiresAt = (fresh.expires_at ?? 0) * 1000 || null;
        schedule((fresh.expires_in ?? 0) * 1000 * 0.75);
      } catch {
        if (session.expiresAt !== null && Date.now() >= session.expiresAt) onExpired();
        else schedule(3000);
      }
    };
    schedule(lifetime * 0.75);
  }

  stopRenewing(): void {
    clearTimeout(this.renewTimer);
  }

  /** Return the stored OpenID user (after `restore`), for `keepRenewed`. */
  async user(): Promise<User | null> {
    return this.manager ? await this.manager.getUser() : null;
  }

  /** Return the current session: finishing a sign-in redirect first, if this is one. */
  async restore(): Promise<Session | null> {
    const params = new URLSearchParams(window.location.search);
    if (this.manager && params.has("code") && params.has("state")) {
      const user = await this.manager.signinRedirectCallback();
      window.history.replaceState(null, "", window.location.pathname + "#/models");
      return sessionOf(user.access_token, "oidc", this.config);
    }
    if (this.manager) {
      let user = await this.manager.getUser();
      // A tab reopened after its token expired: a refresh token still gets a new one.
      if (user?.expired && user.refresh_token) {
        const resource = this.config.oidc?.audience;
        user = await this.manager.signinSilent(resource ? { resource } : {}).catch(() => null);
      }
      if (user && !user.expired) return sessionOf(user.access_token, "oidc", this.config);
    }
    const dev = this.config.dev_sign_in ? sessionStorage.getItem(DEV_TOKEN_KEY) : null;
    return dev ? sessionOf(dev, "dev", this.config) : null;
  }

  /** Send the person to the issuer's sign-in page (authorization code with PKCE). */
  async signIn(): Promise<void> {
    if (!this.manager) throw new Error("No OpenID issuer is configured.");
    await this.manager.signinRedirect();
  }

  /** Return the session of a pasted development token, or an error message. */
  devSignIn(token: string): Session | string {
    if (!this.config.dev_sign_in) return "Development sign-in is off: the services are not in dev mode.";
    const session = sessionOf(token.trim(), "dev", this.config);
    if (!session) return "This is not a token: paste the output of `modelyard dev-token`.";
    if (session.workspaces.length === 0) return "The token names no workspace.";
    sessionStorage.setItem(DEV_TOKEN_KEY, token.trim());
    return session;
  }

  async signOut(session: Session): Promise<void> {
    this.stopRenewing();
    sessionStorage.removeItem(DEV_TOKEN_KEY);
    sessionStorage.removeItem(WORKSPACE_KEY);
    if (session.method === "oidc" && this.manager) await this.manager.removeUser();
  }
}

/** Return the workspace chosen last (if the session still grants it) or the first granted. */
export function initialWorkspace(session: Session): string {
  const last = sessionStorage.getItem(WORKSPACE_KEY);
  return last && session.workspaces.includes(last) ? last : (session.workspaces[0] ?? "");
}

export function rememberWorkspace(workspace: string): void {
  sessionStorage.setItem(WORKSPACE_KEY, workspace);
}
