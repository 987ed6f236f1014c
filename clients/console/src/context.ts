import { createContext } from "preact";
import { useContext } from "preact/hooks";

import type { Registry_ } from "./api.ts";
import type { Session } from "./auth.ts";
import type { ConsoleConfig } from "./config.ts";

/** What every screen needs: who acts, in which workspace, what they may do, and the registry. */
export interface Context {
  config: ConsoleConfig;
  session: Session;
  workspace: string;
  registry: Registry_;
  canEdit: boolean;
  canAdmin: boolean;
  canDecide: boolean;
}

const ConsoleContext = createContext<Context | null>(null);
export const ContextProvider = ConsoleContext.Provider;

export function useConsole(): Context {
  const context = useContext(ConsoleContext);
  if (!context) throw new Error("useConsole outside the shell");
  return context;
}
