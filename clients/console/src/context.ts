import { createContext } from "preact";
import { useContext } from "preact/hooks";

import type { Deployer_, Gateway_, Registry_ } from "./api.ts";
import type { Session } from "./auth.ts";
import type { ConsoleConfig } from "./config.ts";

/** What every screen needs: who acts, in which workspace, what they may do, and the services. */
export interface Context {
  config: ConsoleConfig;
  session: Session;
  workspace: string;
  registry: Registry_;
  deployer: Deployer_;
  gateway: Gateway_;
  canEdit: boolean;
  canAdmin: boolean;
  /** May say where traffic goes (admin or operator): instances' changes and checks. */
  canOperate: boolean;
  canDecide: boolean;
}

const ConsoleContext = createContext<Context | null>(null);
export const ContextProvider = ConsoleContext.Provider;

export function useConsole(): Context {
  const context = useContext(ConsoleContext);
  if (!context) throw new Error("useConsole outside the shell");
  return context;
}
