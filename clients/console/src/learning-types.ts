import { useEffect, useState } from "preact/hooks";

import { type LearningType, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";

let cached: Promise<LearningType[]> | null = null;

/** Return the four learning types with their definitions, as the registry states them
 * (null while loading; an error when they cannot be read, with a way to try again). */
export function useLearningTypeState(): {
  types: LearningType[] | null;
  error: unknown;
  retry: () => void;
} {
  const { registry } = useConsole();
  const [types, setTypes] = useState<LearningType[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    setError(null);
    cached ??= unwrap(registry.GET("/v1/learning-types")).then((r) => r.data);
    cached.then(setTypes, (e: unknown) => {
      cached = null;
      setError(e);
    });
  }, [registry, attempt]);
  return { types, error, retry: () => setAttempt(attempt + 1) };
}

export function useLearningTypes(): LearningType[] | null {
  return useLearningTypeState().types;
}

export function learningTypeLabel(types: LearningType[] | null, id: string): string {
  return types?.find((t) => t.id === id)?.label ?? id.replace("_", "-");
}
