/**
 * Who may call a route is declared where the route is registered: `routes.get(path, access, ...handlers)` puts the
 * handlers on an Express router and ties `access` to that very Express route. The access check (api/access.ts)
 * reads the declarations back from the routes Express has, so there is no second route list that could drift.
 *
 * `admin` may call everything. The other roles get exactly the routes whose `allow` lists them; `ADMIN_ONLY` (an
 * empty list) leaves a route to admin. `createApp` refuses to start while a registered route has no declaration.
 */
import { Router, type Express, type IRouter, type RequestHandler } from 'express';
import type { Role } from '../store/api-keys';

/** `public`: no key at all. `customer_usage`: a customer usage token, limited further by the route's customer scope. */
export type Grant = 'public' | Exclude<Role, 'admin'> | 'customer_usage';

/** True when what the route's params address belongs to the token's customer; out of scope answers like absent. */
export type CustomerScope = (params: Readonly<Record<string, string>>, customerId: string) => Promise<boolean>;

export interface RouteAccess {
  /** `'public'` needs no key; otherwise the roles besides admin that may call the route. */
  readonly allow: 'public' | readonly Exclude<Grant, 'public'>[];
  /** Required when `allow` includes `customer_usage`: where such a token may go. */
  readonly customerScope?: CustomerScope;
}

export const ADMIN_ONLY: RouteAccess = { allow: [] };
export const PUBLIC: RouteAccess = { allow: 'public' };
/** For routes that address nothing but the token's own customer (the handler answers with that customer). */
export const tokenCustomerOnly: CustomerScope = async () => true;

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
/** Path parameters are whole segments (PATH_SYNTAX), so each is one string. */
export type DeclaredHandler = RequestHandler<Record<string, string>>;
type Declare = (path: string, access: RouteAccess, ...handlers: DeclaredHandler[]) => void;

/** A router whose every route says who may call it. */
export type DeclaredRoutes<R extends IRouter = Router> = { readonly router: R } & Record<Method, Declare>;

/** Each declared Express route (the object Express matches) and its access. */
const declarations = new WeakMap<object, RouteAccess>();

/**
 * Literal segments of plain characters and whole-segment `:params` only. The access check relies on it: a path
 * segment that does not percent-decode can then only sit where a parameter is (see api/access.ts).
 */
const PATH_SYNTAX = /^\/$|^(\/(:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z0-9._~-]+))+$/;

/** Declares routes on a new router, or on the one given (the app itself, for its few top-level routes). */
export function declareRoutes(): DeclaredRoutes;
export function declareRoutes<R extends IRouter>(router: R): DeclaredRoutes<R>;
export function declareRoutes(router: IRouter = Router()): DeclaredRoutes<IRouter> {
  const declare =
    (method: Method): Declare =>
    (path, access, ...handlers) => {
      if (!PATH_SYNTAX.test(path)) throw new Error(`route ${method.toUpperCase()} ${path}: expected "/literal/:param" segments`);
      if (access.allow !== 'public' && access.allow.includes('customer_usage') && !access.customerScope) {
        throw new Error(`route ${method.toUpperCase()} ${path} grants customer_usage without a customerScope`);
      }
      const route = router.route(path);
      declarations.set(route, access);
      route[method](...(handlers as RequestHandler[]));
    };
  return { router, get: declare('get'), post: declare('post'), put: declare('put'), patch: declare('patch'), delete: declare('delete') };
}

/** The grants a route's access amounts to: `['public']`, or the roles besides admin (`[]`: admin only). */
export function grantsOf(access: RouteAccess): readonly Grant[] {
  return access.allow === 'public' ? ['public'] : access.allow;
}

// ---------------------------------------------------------------------------------------------------------------
// The app's routes as Express holds them: routers (mounted at a path) and routes, in the order Express tries them.

export interface RouteNode {
  readonly kind: 'route';
  readonly method: string;
  /** The path as registered on its router, and the full template (mount paths included) that names it. */
  readonly path: string;
  readonly template: string;
  readonly access: RouteAccess | undefined;
}
export interface MountNode {
  readonly kind: 'mount';
  readonly path: string;
  readonly children: readonly AppNode[];
}
export type AppNode = RouteNode | MountNode;

interface LayerLike {
  route?: { path: unknown; methods: Record<string, boolean> };
  handle?: { stack?: LayerLike[] };
  rawPath?: unknown;
}

function joinPath(prefix: string, path: string): string {
  const joined = `${prefix}/${path}`.replace(/\/+/g, '/');
  return joined.length > 1 ? joined.replace(/\/$/, '') : joined;
}

export function routeTree(app: Express): AppNode[] {
  const walk = (stack: readonly LayerLike[], prefix: string): AppNode[] =>
    stack.flatMap((layer): AppNode[] => {
      if (layer.route) {
        const { path, methods } = layer.route;
        if (typeof path !== 'string') throw new Error(`route ${String(path)} under ${prefix || '/'}: only string paths can be declared`);
        return Object.keys(methods)
          .filter((name) => methods[name])
          .map((method) => {
            if (method === '_all') throw new Error(`route ALL ${joinPath(prefix, path)}: declare each method instead of router.all`);
            return { kind: 'route', method: method.toUpperCase(), path, template: joinPath(prefix, path), access: declarations.get(layer.route!) };
          });
      }
      if (Array.isArray(layer.handle?.stack)) {
        if (typeof layer.rawPath !== 'string') throw new Error(`a router mounted at ${String(layer.rawPath)}: only string mount paths can be declared`);
        return [{ kind: 'mount', path: layer.rawPath, children: walk(layer.handle.stack, joinPath(prefix, layer.rawPath)) }];
      }
      return [];
    });
  return walk((app as unknown as { router: { stack: LayerLike[] } }).router.stack, '');
}

function routeNodes(nodes: readonly AppNode[]): RouteNode[] {
  return nodes.flatMap((node) => (node.kind === 'route' ? [node] : routeNodes(node.children)));
}

/** Every route registered on the app (through routers at any depth), as `{ method, path }` with full templates. */
export function listRoutes(app: Express): { method: string; path: string }[] {
  return routeNodes(routeTree(app)).map(({ method, template }) => ({ method, path: template }));
}

/** Throws, naming them, when a registered route was not declared (registered other than through declareRoutes). */
export function assertEveryRouteDeclared(app: Express): void {
  const undeclared = routeNodes(routeTree(app)).filter((route) => !route.access);
  if (undeclared.length === 0) return;
  const lines = undeclared.map(({ method, template }) => `route ${method} ${template} has no access declaration: register it with declareRoutes()`);
  throw new Error(`API routes without access declarations (api/route-declarations.ts):\n  ${lines.join('\n  ')}`);
}

export interface RouteDescription {
  readonly method: string;
  readonly path: string;
  readonly grants: readonly Grant[];
  readonly customerScope?: CustomerScope;
}

/** The role matrix (docs/security.md renders it): every route with its grants, admin implied everywhere. */
export function describeRoutes(app: Express): RouteDescription[] {
  assertEveryRouteDeclared(app);
  return routeNodes(routeTree(app)).map(({ method, template, access }) => ({
    method,
    path: template,
    grants: grantsOf(access!),
    ...(access!.customerScope ? { customerScope: access!.customerScope } : {}),
  }));
}
