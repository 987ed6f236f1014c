import { useEffect, useState } from "preact/hooks";

import { type LearningType, unwrap } from "./api.ts";
import { useConsole } from "./context.ts";

let cached: Promise<LearningType[]> | null = null;

/** Return the four learning types with their definitions, as the registry states them. */
export function useLearningTypes(): LearningType[] | null {
  const { registry } = useConsole();
  const [types, setTypes] = useState<LearningType[] | null>(null);
  useEffect(() => {
    cached ??= unwrap(registry.GET("/v1/learning-types")).then((r) => r.data);
    cached.then(setTypes, () => {
      cached = null;
    });
  }, [registry]);
  return types;
}

export function learningTypeLabel(types: LearningType[] | null, id: string): string {
  return types?.find((t) => t.id === id)?.label ?? id.replace("_", "-");
}
