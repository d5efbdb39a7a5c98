import type { TRPCProcedureType } from '@trpc/server';
import {
  forEachOpenApiProcedure,
  getPathRegExp,
  normalizePath,
  type OpenApiRouter,
} from 'trpc-to-openapi';

export type RestProcedure = { path: string; type: TRPCProcedureType };

/** A REST request's route: its procedure, or the methods its path takes when not this one. */
export type RestMatch = { procedure: RestProcedure } | { allow: string[] } | null;

type Route = { method: string; pattern: RegExp; procedure: RestProcedure };

/**
 * The REST shim's routing table, read from the same metas with the shim's own path helpers, so
 * that both agree on what a path is. The shim itself only knows "this method and path, or
 * nothing": a wrong method on a real path came out as 404, and HEAD as a 204 on any path.
 */
export function createRestRoutes(
  router: OpenApiRouter,
): (method: string, path: string) => RestMatch {
  const routes: Route[] = [];
  forEachOpenApiProcedure(router._def.procedures, ({ path, type, meta: { openapi } }) => {
    // The shim serves no subscriptions.
    if (type === 'subscription') return;
    routes.push({
      method: openapi.method,
      pattern: getPathRegExp(normalizePath(openapi.path)),
      procedure: { path, type },
    });
  });
  return (method, path) => {
    const normalized = normalizePath(path);
    const here = routes.filter((route) => route.pattern.test(normalized));
    if (here.length === 0) return null;
    const route = here.find((r) => r.method === method);
    if (route) return { procedure: route.procedure };
    const methods = new Set(here.map((r) => r.method));
    if (methods.has('GET')) methods.add('HEAD');
    return { allow: [...methods] };
  };
}
