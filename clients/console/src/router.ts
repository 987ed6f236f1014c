import { useEffect, useState } from "preact/hooks";

/** Return the current hash route's parts, e.g. "#/models/ID/settings" -> ["models", "ID", "settings"]. */
export function useRoute(): string[] {
  const read = () => window.location.hash.replace(/^#\/?/, "").split("?")[0]!.split("/").filter(Boolean);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const changed = () => setRoute(read());
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}

export function go(path: string): void {
  window.location.hash = path;
}
