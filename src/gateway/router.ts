import { Route } from './route';

export interface Match {
  readonly route: Route;
  readonly params: Record<string, string>;
}

interface Compiled {
  readonly route: Route;
  readonly pattern: RegExp;
  readonly names: readonly string[];
}

/**
 * Matches paths against the Functions route templates ("v1/models/{model}",
 * "openai/{*operation}"), the same templates the Functions host is given,
 * with an empty route prefix: the local host routes with it, and so do the
 * Azure-style paths that stand for the gateway's own routes.
 */
export class Router {
  /** Matches of the routes without parameters, made once: most requests land on one. */
  private readonly exact = new Map<string, Match>();
  private readonly templated: Compiled[] = [];

  constructor(routes: readonly Route[]) {
    for (const route of routes) {
      const names: string[] = [];
      // {name} takes one segment; {*name}, the Functions catch-all, takes the rest of the path.
      const source = route.route.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\\\*)?(\w+)\??\}/g, (_m, rest: string | undefined, name: string) => {
        names.push(name);
        return rest ? '(.+)' : '([^/]+)';
      });
      if (names.length === 0) this.exact.set(`/${route.route}`.toLowerCase(), Object.freeze({ route, params: Object.freeze({}) }));
      else this.templated.push({ route, pattern: new RegExp(`^/${source}/?$`, 'i'), names });
    }
  }

  match(path: string): Match | undefined {
    const exact = this.exact.get(path);
    if (exact !== undefined) return exact;
    const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
    const found = this.exact.get(trimmed.toLowerCase());
    if (found !== undefined) return found;
    for (const c of this.templated) {
      const m = c.pattern.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      try {
        c.names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1])));
      } catch {
        continue;
      }
      return { route: c.route, params };
    }
    return undefined;
  }
}
