/** Compiled route patterns (`/api/conversations/:id/messages`) to tell a wrong method from an unknown path. */
const patternCache = new Map<string, RegExp>();

function patternOf(path: string): RegExp {
  let re = patternCache.get(path);
  if (!re) {
    const source = path
      .split("/")
      .map((segment) =>
        segment.startsWith(":") ? "[^/]+" : segment === "*" ? ".*" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
      )
      .join("/");
    re = new RegExp(`^${source}/?$`);
    patternCache.set(path, re);
  }
  return re;
}

/** Methods registered for a concrete path; empty when no route matches it at all. */
export function allowedMethods(routes: { method: string; path: string }[], path: string): string[] {
  const methods = new Set<string>();
  for (const route of routes) {
    if (route.method === "ALL" || route.method === "WS") continue;
    if (patternOf(route.path).test(path)) methods.add(route.method);
  }
  if (methods.has("GET")) methods.add("HEAD");
  return [...methods].sort();
}
