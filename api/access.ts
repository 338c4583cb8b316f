/**
 * Who may call what, in one place: every route the app registers has an entry in ROUTE_ACCESS, and createApp
 * refuses to start when one has none (assertEveryRouteDeclared). The `authenticate` middleware runs before any
 * router: it finds the route's entry by method and path, checks the API key and its role, and answers 401/403 as
 * application/problem+json before a handler, a body parser or a database write is reached.
 *
 * `admin` may call everything. The other roles get exactly the routes that list them. A request that matches no
 * entry (an unknown path or method) needs an admin key, so a route whose entry went missing fails closed.
 */
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import type { Database } from '../store/database';
import { ApiKeyRow, findApiKeyByPrefix, KeyRole, prefixOf, Role, secretMatches, touchApiKey } from '../store/api-keys';
import { ApiProblem } from './problem';
import { uuidParam } from './schemas';

/** `public`: no key at all. `customer_usage`: a customer usage token, limited further by the route's scope. */
export type Grant = 'public' | Exclude<Role, 'admin'> | 'customer_usage';

const ADMIN_ONLY: readonly Grant[] = [];
const PUBLIC: readonly Grant[] = ['public'];
/** Reads that both the product (`app`) and the finance team need. */
const READ: readonly Grant[] = ['app', 'finance'];

/**
 * The role matrix (docs/security.md renders it). `admin` is implied on every line; an empty list means admin only.
 * A new route is added here in the same change, or the app does not start.
 */
export const ROUTE_ACCESS: Readonly<Record<string, readonly Grant[]>> = {
  'GET /healthz': PUBLIC,
  'GET /readyz': PUBLIC,
  'GET /metrics': ['monitoring'],

  'POST /v1/api-keys': ADMIN_ONLY,
  'GET /v1/api-keys': ADMIN_ONLY,
  'POST /v1/api-keys/:id/revoke': ADMIN_ONLY,

  // Catalog: admin writes, everyone reads.
  'POST /v1/customers': ADMIN_ONLY,
  'GET /v1/customers/:id': READ,
  'POST /v1/metrics': ADMIN_ONLY,
  'GET /v1/metrics': READ,
  'POST /v1/plans': ADMIN_ONLY,
  'GET /v1/plans': READ,
  'GET /v1/plans/:code': READ,

  // The product's own flows: payment method updates, usage page tokens, subscribe, cancel, usage ingestion.
  'POST /v1/customers/:id/payment-method': ['app', 'finance'],
  'POST /v1/customers/:id/usage-tokens': ['app'],
  'POST /v1/subscriptions': ['app'],
  'POST /v1/subscriptions/:id/cancel': ['app'],
  'POST /v1/subscriptions/:id/plan-change': ['app'],
  'DELETE /v1/subscriptions/:id/scheduled-change': ['app'],
  'POST /v1/subscriptions/:id/pause': ['app'],
  'POST /v1/subscriptions/:id/resume': ['app'],
  'POST /v1/subscriptions/:id/retention/accept': ['app'],
  'POST /v1/subscriptions/:id/retention/decline': ['app'],
  'POST /v1/subscriptions/:id/win-back/accept': ['app'],
  // Ops resume a subscription in needs_attention after fixing its data (docs/operations.md).
  'POST /v1/subscriptions/:id/retry': ['finance'],
  'POST /v1/events': ['app'],
  'GET /v1/subscriptions/:id': READ,
  'GET /v1/subscriptions/:id/usage': ['app', 'finance', 'customer_usage'],
  'GET /v1/subscriptions/:id/late-usage': READ,
  'PUT /v1/subscriptions/:id/budget': ['app'],

  // Money: finance acts; the product may show invoices to its customers.
  'GET /v1/invoices': READ,
  'GET /v1/invoices/:id': READ,
  'POST /v1/invoices/:id/refunds': ['finance'],
  'POST /v1/invoices/:id/rerate': ['finance'],
  'GET /v1/rerates/:id': ['finance'],
  'POST /v1/rerates/:id/approve': ['finance'],
  'POST /v1/rerates/:id/reject': ['finance'],
  'GET /v1/invoices/:id/refunds': ['finance'],
  'GET /v1/reports/margins': ['finance'],

  // Integrations are configuration.
  'POST /v1/webhook-endpoints': ADMIN_ONLY,
  'GET /v1/webhook-endpoints': ADMIN_ONLY,
  'GET /v1/webhook-endpoints/:id/deliveries': ADMIN_ONLY,

  // The customer usage page (docs/usage-page.md): static files, public; its data needs the customer's usage token.
  'GET /usage': PUBLIC,
  'GET /usage/usage-page.js': PUBLIC,
  'GET /usage/usage-page.css': PUBLIC,
  'GET /v1/usage-token/me': ['customer_usage'],
  'GET /v1/subscriptions/:id/usage/daily': ['app', 'finance', 'customer_usage'],
  'GET /v1/subscriptions/:id/invoices': ['app', 'finance', 'customer_usage'],

  // Invoice and credit note documents: whoever may read the invoice.
  'GET /v1/invoices/:id/document.html': READ,
  'GET /v1/invoices/:id/document.pdf': READ,
};

/**
 * Where a customer usage token may go, and how to tell that the addressed resource is its customer's. A route that
 * grants `customer_usage` must have a scope here (checked at start-up).
 */
type CustomerScope = (db: Database, params: Record<string, string>, customerId: string) => Promise<boolean>;
/** `:id` is a subscription of the token's customer. */
const ownSubscription: CustomerScope = async (db, params, customerId) => {
  const id = uuidParam.safeParse(params.id);
  if (!id.success) return false;
  return (await db('subscriptions').where({ id: id.data, customer_id: customerId }).first('id')) !== undefined;
};
const CUSTOMER_SCOPES: Readonly<Record<string, CustomerScope>> = {
  'GET /v1/subscriptions/:id/usage': ownSubscription,
  'GET /v1/subscriptions/:id/usage/daily': ownSubscription,
  'GET /v1/subscriptions/:id/invoices': ownSubscription,
  // Addresses nothing: the handler answers with the token's own customer.
  'GET /v1/usage-token/me': async () => true,
};

// ---------------------------------------------------------------------------------------------------------------
// Route templates: literal segments and `:param` segments only, matched like Express 5 does by default
// (case-insensitive, optional trailing slash, a parameter is one non-empty segment).

const TEMPLATE = /^\/$|^(\/(:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z0-9._~-]+))+$/;

interface CompiledRoute {
  readonly key: string;
  readonly method: string;
  readonly template: string;
  readonly regex: RegExp;
  readonly paramNames: readonly string[];
  readonly grants: readonly Grant[];
  readonly literalSegments: number;
}

function compile(key: string, grants: readonly Grant[]): CompiledRoute {
  const [method, template] = key.split(' ');
  if (!method || !template || !TEMPLATE.test(template)) throw new Error(`route access entry "${key}": expected "METHOD /path/:param"`);
  const paramNames: string[] = [];
  let literalSegments = 0;
  const body = template
    .split('/')
    .slice(1)
    .map((segment) => {
      if (segment.startsWith(':')) {
        paramNames.push(segment.slice(1));
        return '/([^/]+)';
      }
      literalSegments += 1;
      return `/${segment.replace(/[.~-]/g, (c) => `\\${c}`)}`;
    })
    .join('');
  const regex = new RegExp(`^${template === '/' ? '' : body}/?$`, 'i');
  return { key, method, template, regex, paramNames, grants, literalSegments };
}

const COMPILED: readonly CompiledRoute[] = Object.entries(ROUTE_ACCESS).map(([key, grants]) => compile(key, grants));

export interface ResolvedRoute {
  /** e.g. `/v1/subscriptions/:id/usage`: logs and metrics label requests by it, never by raw paths. */
  readonly template: string;
  readonly key: string;
  /** Every matching entry's grants; a request must satisfy all of them (overlapping templates fail closed). */
  readonly grantSets: readonly (readonly Grant[])[];
  readonly params: Record<string, string>;
  /** A path parameter that cannot be decoded (answered 400 once the caller is authorized). */
  readonly problem?: ApiProblem;
}

/** The access entries a request matches; undefined when none does. */
export function resolveRoute(method: string, path: string): ResolvedRoute | undefined {
  const effectiveMethod = method === 'HEAD' ? 'GET' : method;
  const matches = COMPILED.filter((route) => route.method === effectiveMethod && route.regex.test(path));
  if (matches.length === 0) return undefined;
  // The most literal template names the request (`/plans/current` over `/plans/:code`), as Express would pick.
  const best = [...matches].sort((a, b) => b.literalSegments - a.literalSegments)[0];
  const groups = best.regex.exec(path)!.slice(1);
  const params: Record<string, string> = {};
  let problem: ApiProblem | undefined;
  best.paramNames.forEach((name, index) => {
    try {
      params[name] = decodeURIComponent(groups[index]);
    } catch {
      problem ??= new ApiProblem('malformed_request', `the path segment "${groups[index].slice(0, 100)}" is not valid percent-encoding`);
    }
    if (params[name]?.includes('\u0000')) problem ??= new ApiProblem('malformed_request', 'path segments must not contain NUL characters');
  });
  return { template: best.template, key: best.key, grantSets: matches.map((route) => route.grants), params, problem };
}

// ---------------------------------------------------------------------------------------------------------------
// Start-up check: the routes Express actually has, against the table.

interface LayerLike {
  route?: { path: unknown; methods: Record<string, boolean> };
  handle?: { stack?: LayerLike[] };
  rawPath?: unknown;
}

function joinPath(prefix: string, path: string): string {
  const joined = `${prefix}/${path}`.replace(/\/+/g, '/');
  return joined.length > 1 ? joined.replace(/\/$/, '') : joined;
}

/** Every route registered on the app (through routers at any depth), as `{ method, path }` with full templates. */
export function listRoutes(app: Express): { method: string; path: string }[] {
  const routes: { method: string; path: string }[] = [];
  const walk = (stack: readonly LayerLike[], prefix: string): void => {
    for (const layer of stack) {
      if (layer.route) {
        const { path, methods } = layer.route;
        if (typeof path !== 'string') throw new Error(`route ${String(path)} under ${prefix || '/'}: only string paths can be declared`);
        for (const method of Object.keys(methods).filter((name) => methods[name])) {
          if (method === '_all') throw new Error(`route ALL ${joinPath(prefix, path)}: declare each method instead of router.all`);
          routes.push({ method: method.toUpperCase(), path: joinPath(prefix, path) });
        }
      } else if (Array.isArray(layer.handle?.stack)) {
        if (typeof layer.rawPath !== 'string') throw new Error(`a router mounted at ${String(layer.rawPath)}: only string mount paths can be declared`);
        walk(layer.handle.stack, joinPath(prefix, layer.rawPath));
      }
    }
  };
  walk((app as unknown as { router: { stack: LayerLike[] } }).router.stack, '');
  return routes;
}

/** Throws, naming them, when a registered route has no access entry, or an entry names no route. */
export function assertEveryRouteDeclared(app: Express): void {
  const registered = new Set(listRoutes(app).map(({ method, path }) => `${method} ${path}`));
  const declared = new Set(Object.keys(ROUTE_ACCESS));
  const undeclared = [...registered].filter((key) => !declared.has(key));
  const stale = [...declared].filter((key) => !registered.has(key));
  const unscoped = Object.entries(ROUTE_ACCESS)
    .filter(([key, grants]) => grants.includes('customer_usage') && !CUSTOMER_SCOPES[key])
    .map(([key]) => key);
  const problems = [
    ...undeclared.map((key) => `route ${key} has no entry in ROUTE_ACCESS (api/access.ts): declare who may call it`),
    ...stale.map((key) => `ROUTE_ACCESS (api/access.ts) declares ${key}, which is not a registered route`),
    ...unscoped.map((key) => `ROUTE_ACCESS grants customer_usage on ${key} without a CUSTOMER_SCOPES entry`),
  ];
  if (problems.length) throw new Error(`API access table is out of date:\n  ${problems.join('\n  ')}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Authentication.

export interface Principal {
  readonly keyId: string;
  readonly role: KeyRole;
  readonly customerId: string | null;
}

export interface RequestAccess {
  readonly route: ResolvedRoute | undefined;
  readonly principal: Principal | undefined;
}

/** What `authenticate` decided about a request (undefined before it ran). */
export function accessOf(res: Response): RequestAccess | undefined {
  return res.locals.access as RequestAccess | undefined;
}

export interface AuthenticatorOptions {
  /** How long a looked-up key is trusted without asking Postgres again (revocations by other processes wait this long). */
  readonly cacheTtlMs?: number;
  /** last_used_at is written at most this often per key. */
  readonly touchIntervalMs?: number;
}

/** Finds keys by their public prefix (cached briefly), then compares the secret's hash in constant time. */
export class ApiKeyAuthenticator {
  private readonly cache = new Map<string, { row: ApiKeyRow; loadedAt: number }>();
  private readonly cacheTtlMs: number;
  private readonly touchIntervalMs: number;

  constructor(
    private readonly db: Database,
    options: AuthenticatorOptions = {},
  ) {
    this.cacheTtlMs = options.cacheTtlMs ?? 5_000;
    this.touchIntervalMs = options.touchIntervalMs ?? 60_000;
  }

  /** The key's row when the secret matches, whatever its state (revoked, expired); undefined otherwise. */
  async verify(key: string): Promise<ApiKeyRow | undefined> {
    const prefix = prefixOf(key);
    if (!prefix) return undefined;
    const row = await this.load(prefix);
    return row && secretMatches(key, row) ? row : undefined;
  }

  /** Forgets a key at once (after a revocation in this process). */
  invalidate(prefix: string): void {
    this.cache.delete(prefix);
  }

  private async load(prefix: string): Promise<ApiKeyRow | undefined> {
    const now = Date.now();
    const cached = this.cache.get(prefix);
    if (cached && now - cached.loadedAt < this.cacheTtlMs) return cached.row;
    const row = await findApiKeyByPrefix(this.db, prefix);
    if (!row) {
      this.cache.delete(prefix);
      return undefined;
    }
    if (!row.revoked_at && (!row.last_used_at || now - row.last_used_at.getTime() > this.touchIntervalMs)) {
      await touchApiKey(this.db, row.id, new Date(now));
    }
    this.cache.set(prefix, { row, loadedAt: now });
    return row;
  }
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

function unauthenticated(res: Response, code: 'unauthenticated' | 'api_key_revoked' | 'api_key_expired', detail: string): ApiProblem {
  res.setHeader('WWW-Authenticate', `Bearer realm="meterloop"${code === 'unauthenticated' ? '' : ', error="invalid_token"'}`);
  return new ApiProblem(code, detail);
}

function allowed(role: KeyRole, grantSets: readonly (readonly Grant[])[]): boolean {
  if (role === 'admin') return true;
  return grantSets.every((grants) => grants.includes(role));
}

/**
 * The first middleware after request logging: every request leaves it authorized, public, or answered 401/403.
 * `now` (epoch ms) is the clock key expiry is judged by; tests pass one they can move.
 */
export function authenticate(db: Database, authenticator: ApiKeyAuthenticator, now: () => number = Date.now): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const route = resolveRoute(req.method, req.path);
    res.locals.access = { route, principal: undefined } satisfies RequestAccess;
    if (route && route.grantSets.every((grants) => grants.includes('public'))) return next(route.problem);

    const header = req.header('authorization');
    if (!header) throw unauthenticated(res, 'unauthenticated', 'send an API key: "Authorization: Bearer <key>"');
    const key = BEARER.exec(header)?.[1];
    const row = key ? await authenticator.verify(key) : undefined;
    if (!row) throw unauthenticated(res, 'unauthenticated', 'the API key is not valid');
    if (row.revoked_at) throw unauthenticated(res, 'api_key_revoked', `API key ${row.prefix} was revoked at ${row.revoked_at.toISOString()}`);
    if (row.expires_at && row.expires_at.getTime() <= now()) {
      throw unauthenticated(res, 'api_key_expired', `API key ${row.prefix} expired at ${row.expires_at.toISOString()}`);
    }
    const principal: Principal = { keyId: row.id, role: row.role, customerId: row.customer_id };
    res.locals.access = { route, principal } satisfies RequestAccess;
    // Also as req.apiKey, for handlers that record who acted (audit actors).
    Object.assign(req, { apiKey: { id: row.id, role: row.role, customerId: row.customer_id } });

    if (!route) {
      // No entry: an unknown path or method. Only admin gets past (and then a 404); everyone else is refused.
      if (row.role === 'admin') return next();
      throw new ApiProblem('forbidden', `no ${req.method} ${req.path} for a key with role ${row.role}`);
    }
    if (!allowed(row.role, route.grantSets)) {
      throw new ApiProblem('forbidden', `a key with role ${row.role} may not call ${route.key}`);
    }
    if (route.problem) throw route.problem;
    if (row.role === 'customer_usage') {
      const scope = CUSTOMER_SCOPES[route.key];
      // Out of scope looks exactly like absent: a token learns nothing about other customers.
      if (!scope || !(await scope(db, route.params, row.customer_id!))) {
        throw new ApiProblem('subscription_not_found', `no subscription ${route.params.id ?? ''}`.trim());
      }
    }
    return next();
  };
}
