/**
 * The check every request passes first (after request logging), before rate limits, body parsers, Idempotency-Key
 * replay, handlers and any database write: it finds the declared routes the request matches (declared next to
 * each route, api/route-declarations.ts), checks the API key and its role, and answers 401/403 as
 * application/problem+json.
 *
 * Express does the matching: `learnRoutes` mirrors the app's routers and routes (same mount paths, same paths and
 * methods) into a second Express router whose handlers only record the match. A request that matches no
 * declaration (an unknown path or method) needs an admin key before it gets its 404, so a gap fails closed.
 */
import { Router, type Express, type Request, type RequestHandler, type Response } from 'express';
import type { KeyRole } from '../store/api-keys';
import { ApiKeyAuthenticator, presentedApiKey } from './authentication';
import { ApiProblem } from './problem';
import { ADMIN_ONLY, AppNode, CustomerScope, Grant, grantsOf, RouteNode, routeTree } from './route-declarations';

export interface MatchedRoute {
  /** e.g. `/v1/subscriptions/:id/usage`: logs and metrics label requests by it, never by raw paths. */
  readonly template: string;
  /** e.g. `GET /v1/subscriptions/:id/usage`. */
  readonly key: string;
  /** Every matching declaration's grants; a request must satisfy all of them (overlapping templates fail closed). */
  readonly grantSets: readonly (readonly Grant[])[];
  readonly params: Readonly<Record<string, string>>;
  readonly customerScope?: CustomerScope;
  /** A path parameter that cannot be decoded (answered 400 once the caller is authorized). */
  readonly problem?: ApiProblem;
}

export interface Principal {
  readonly keyId: string;
  readonly role: KeyRole;
  readonly customerId: string | null;
}

export interface RequestAccess {
  readonly route: MatchedRoute | undefined;
  readonly principal: Principal | undefined;
}

/** What the access check decided about a request (undefined before it ran). */
export function accessOf(res: Response): RequestAccess | undefined {
  return res.locals.access as RequestAccess | undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Matching: a bare request (method and path, nothing else) goes through the mirror router; the real request is
// left untouched.

const MATCHES = Symbol('declared route matches');
interface DeclaredMatch {
  readonly route: RouteNode;
  readonly params: Record<string, string>;
}
interface Probe {
  readonly method: string;
  readonly url: string;
  readonly [MATCHES]: DeclaredMatch[];
}

const recordMatch =
  (route: RouteNode): RequestHandler =>
  (req, _res, next) => {
    (req as unknown as Probe)[MATCHES].push({ route, params: { ...req.params } as Record<string, string> });
    next(); // on to the next matching declaration: every one that matches must grant the caller
  };

function mirror(nodes: readonly AppNode[]): Router {
  const router = Router();
  for (const node of nodes) {
    if (node.kind === 'mount') router.use(node.path, mirror(node.children));
    // A route registered without a declaration (createApp refuses those) would still only be admin's.
    else router[node.method.toLowerCase() as 'get'](node.path, recordMatch(node));
  }
  return router;
}

function decodes(segment: string): boolean {
  try {
    decodeURIComponent(segment);
    return true;
  } catch {
    return false;
  }
}
/** Stands in for a segment that does not decode; it decodes, and equals no literal segment (those have no `%`). */
const OPAQUE_SEGMENT = '%25';

async function matchDeclared(matcher: Router, method: string, path: string): Promise<MatchedRoute | undefined> {
  // No declaration is for OPTIONS, and an Express router would answer OPTIONS itself (with its Allow list).
  if (method === 'OPTIONS') return undefined;
  // Express does not match a route whose parameter fails to decode. To know whose route it is before answering
  // 400, such a segment is matched as an opaque one (it can only fill a parameter: see PATH_SYNTAX).
  const segments = path.split('/');
  const undecodable = segments.find((segment) => !decodes(segment));
  const probe: Probe = { method, url: segments.map((segment) => (decodes(segment) ? segment : OPAQUE_SEGMENT)).join('/'), [MATCHES]: [] };
  await new Promise<void>((resolve, reject) => {
    matcher(probe as unknown as Request, {} as Response, (error?: unknown) => (error ? reject(error) : resolve()));
  });
  const matches = probe[MATCHES];
  if (matches.length === 0) return undefined;
  // The first match is the route Express will run.
  const [{ route, params }] = matches;
  const problem =
    undecodable !== undefined
      ? new ApiProblem('malformed_request', `the path segment "${undecodable.slice(0, 100)}" is not valid percent-encoding`)
      : Object.values(params).some((value) => value.includes('\u0000'))
        ? new ApiProblem('malformed_request', 'path segments must not contain NUL characters')
        : undefined;
  return {
    template: route.template,
    key: `${route.method} ${route.template}`,
    grantSets: matches.map((match) => grantsOf(match.route.access ?? ADMIN_ONLY)),
    params,
    customerScope: route.access?.customerScope,
    problem,
  };
}

// ---------------------------------------------------------------------------------------------------------------

function allowed(role: KeyRole, grantSets: readonly (readonly Grant[])[]): boolean {
  if (role === 'admin') return true;
  return grantSets.every((grants) => grants.includes(role));
}

export class AccessControl {
  /** Empty until learnRoutes: until then every request needs an admin key. */
  private matcher = Router();

  /** `now` (epoch ms) is the clock API-key expiry is judged by. */
  constructor(
    private readonly authenticator: ApiKeyAuthenticator,
    private readonly now: () => number = Date.now,
  ) {}

  /** Reads the declarations from the routes the app has; call once every router is mounted. */
  learnRoutes(app: Express): void {
    this.matcher = mirror(routeTree(app));
  }

  /** Every request leaves it authorized, public, or answered 401/403 (or 400/404 once it is known who asks). */
  readonly middleware: RequestHandler = async (req, res, next) => {
    const route = await matchDeclared(this.matcher, req.method, req.path);
    res.locals.access = { route, principal: undefined } satisfies RequestAccess;
    if (route && route.grantSets.every((grants) => grants.includes('public'))) return next(route.problem);

    const row = await presentedApiKey(req, res, this.authenticator, this.now);
    const principal: Principal = { keyId: row.id, role: row.role, customerId: row.customer_id };
    res.locals.access = { route, principal } satisfies RequestAccess;
    // Also as req.apiKey, for handlers that record who acted (audit actors).
    Object.assign(req, { apiKey: { id: row.id, role: row.role, customerId: row.customer_id } });

    if (!route) {
      // No declaration: an unknown path or method. Only admin gets past (and then a 404); everyone else is refused.
      if (row.role === 'admin') return next();
      throw new ApiProblem('forbidden', `no ${req.method} ${req.path} for a key with role ${row.role}`);
    }
    if (!allowed(row.role, route.grantSets)) throw new ApiProblem('forbidden', `a key with role ${row.role} may not call ${route.key}`);
    if (route.problem) throw route.problem;
    if (row.role === 'customer_usage') {
      // Out of scope looks exactly like absent: a token learns nothing about other customers.
      if (!route.customerScope || !(await route.customerScope(route.params, row.customer_id!))) {
        throw new ApiProblem('subscription_not_found', `no subscription ${route.params.id ?? ''}`.trim());
      }
    }
    return next();
  };
}
