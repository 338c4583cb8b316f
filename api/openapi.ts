/**
 * The OpenAPI 3.1 document of this API, generated (never hand-written) from three sources that the running API
 * itself uses: the routes Express has with their access declarations (who may call them), the zod schemas the
 * handlers validate with (requests) and describe their answers with (responses, api/schemas.ts), and the problem
 * codes of api/problem.ts. Per-route prose, examples and route-specific problem codes live in api/openapi-routes.ts.
 *
 * Served at /openapi.json (api/openapi-router.ts), written to docs/openapi.json by `npm run openapi`.
 */
import type { Express } from 'express';
import { z } from 'zod';
import { ApiProblem, ProblemCode } from './problem';
import { describeRoutes, type Grant, type RouteDescription } from './route-declarations';
import { ROUTE_DOCS, TAGS, type RouteDoc } from './openapi-routes';
import * as schemaModule from './schemas';
import { problemResponse } from './schemas';

export const OPENAPI_VERSION = '3.1.0';
/** The contract's version: bump it when a response loses a field or a request gains a required one. */
export const API_VERSION = '1.0.0';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON document
export type OpenApiDocument = Record<string, any>;
type JsonSchema = Record<string, unknown>;

/** `METHOD /template` with Express's `:param` syntax: how ROUTE_DOCS and listRoutes name a route. */
export const routeKey = (method: string, path: string): string => `${method.toUpperCase()} ${path}`;
/** `/v1/subscriptions/:id` -> `/v1/subscriptions/{id}`. */
export const openApiPath = (path: string): string => path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');

// ---------------------------------------------------------------------------------------------------------------
// Security: one bearer scheme per role, so the document says which keys a route takes (admin takes every route).

const SECURITY_SCHEMES = {
  admin_key: 'An API key with role `admin`: every route.',
  finance_key: 'An API key with role `finance`.',
  app_key: 'An API key with role `app` (your application).',
  monitoring_key: 'An API key with role `monitoring` (scrapers, health checks).',
  customer_usage_token: "A customer usage token (POST /v1/customers/{id}/usage-tokens): reads that customer's own usage and invoices only.",
} as const;

function securitySchemeOf(grant: Exclude<Grant, 'public'>): keyof typeof SECURITY_SCHEMES {
  return grant === 'customer_usage' ? 'customer_usage_token' : `${grant}_key`;
}

function securityOf(grants: readonly Grant[]): Record<string, string[]>[] {
  if (grants.includes('public')) return [];
  return [{ admin_key: [] }, ...grants.map((grant) => ({ [securitySchemeOf(grant as Exclude<Grant, 'public'>)]: [] }))];
}

// ---------------------------------------------------------------------------------------------------------------
// Problem codes: the route's own, plus those the middleware in front of every route can answer (api/app.ts).

function problemsOf(method: string, grants: readonly Grant[], doc: RouteDoc | undefined): ProblemCode[] {
  const codes = new Set<ProblemCode>(doc?.problems ?? []);
  // Input checks (api/input-guard.ts) and failures any handler can meet.
  for (const code of ['malformed_request', 'malformed_json', 'payload_too_large', 'unsupported_media_type', 'validation_failed', 'internal_error', 'database_unavailable'] as const) {
    codes.add(code);
  }
  if (!grants.includes('public')) {
    for (const code of ['unauthenticated', 'api_key_revoked', 'api_key_expired', 'forbidden', 'rate_limited'] as const) codes.add(code);
  }
  // Out of scope for a usage token looks exactly like absent (api/access.ts).
  if (grants.includes('customer_usage')) codes.add('subscription_not_found');
  if (method === 'POST' && !grants.includes('public')) {
    codes.add('idempotency_key_reused');
    codes.add('idempotency_request_in_progress');
  }
  return [...codes];
}

const statusOf = (code: ProblemCode): number => new ApiProblem(code, '').status;

function problemResponses(codes: readonly ProblemCode[]): Record<string, unknown> {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of codes) byStatus.set(statusOf(code), [...(byStatus.get(statusOf(code)) ?? []), code]);
  const responses: Record<string, unknown> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    const sorted = [...list].sort();
    responses[String(status)] = {
      description: `Problem: ${sorted.map((code) => `\`${code}\``).join(', ')}.`,
      ...(status === 429 || status === 503 ? { headers: { 'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } } } } : {}),
      content: {
        'application/problem+json': {
          schema: { allOf: [{ $ref: '#/components/schemas/ProblemResponse' }, { type: 'object', properties: { code: { enum: sorted } } }] },
        },
      },
    };
  }
  return responses;
}

// ---------------------------------------------------------------------------------------------------------------
// Schemas: request bodies in zod's input view (defaults make fields optional), responses in its output view.

const pascal = (name: string): string => name.charAt(0).toUpperCase() + name.slice(1);

/** Exported zod schemas of api/schemas.ts by instance, so components get their source names. */
const EXPORTED_NAMES = new Map<unknown, string>(
  Object.entries(schemaModule)
    .filter(([, value]) => value instanceof z.ZodType)
    .map(([name, value]) => [value, pascal(name)]),
);

class SchemaComponents {
  private readonly input = z.registry<{ id: string }>();
  private readonly output = z.registry<{ id: string }>();
  private readonly used = new Set<string>();

  /** A `$ref` to the schema's component, registering it under its export name or `fallbackName`. */
  ref(schema: z.ZodType, io: 'input' | 'output', fallbackName: string): JsonSchema {
    const registry = io === 'input' ? this.input : this.output;
    const existing = registry.get(schema)?.id;
    if (existing) return { $ref: `#/components/schemas/${existing}` };
    let id = EXPORTED_NAMES.get(schema) ?? fallbackName;
    for (let n = 2; this.used.has(id); n += 1) id = `${EXPORTED_NAMES.get(schema) ?? fallbackName}${n}`;
    this.used.add(id);
    registry.add(schema, { id });
    return { $ref: `#/components/schemas/${id}` };
  }

  toJson(): Record<string, JsonSchema> {
    const uri = (id: string): string => `#/components/schemas/${id}`;
    const all = {
      ...z.toJSONSchema(this.input, { io: 'input', uri, unrepresentable: 'any' }).schemas,
      ...z.toJSONSchema(this.output, { io: 'output', uri, unrepresentable: 'any' }).schemas,
    } as Record<string, JsonSchema>;
    return Object.fromEntries(
      Object.entries(all)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([id, schema]) => {
          const { $schema: _dialect, $id: _id, ...rest } = schema;
          return [id, withoutFormatPatterns(rest)];
        }),
    );
  }
}

/**
 * zod spells out its regular expression for uuid, date-time and email beside the `format`; the format says it
 * (and validators check it), the 300-character pattern only makes the document unreadable.
 */
function withoutFormatPatterns<T>(value: T): T {
  if (Array.isArray(value)) return value.map(withoutFormatPatterns) as T;
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  const formatted = entries.some(([key, child]) => key === 'format' && typeof child === 'string');
  return Object.fromEntries(entries.filter(([key]) => !(formatted && key === 'pattern')).map(([key, child]) => [key, withoutFormatPatterns(child)])) as T;
}

/** A zod object schema's properties as OpenAPI parameters (query strings), inlined. */
function queryParameters(query: z.ZodType): unknown[] {
  const json = z.toJSONSchema(query, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, schema]) => {
    const { description, ...rest } = schema;
    return { name, in: 'query', required: (json.required ?? []).includes(name), ...(description ? { description } : {}), schema: withoutFormatPatterns(rest) };
  });
}

function pathParameters(path: string, doc: RouteDoc | undefined): unknown[] {
  return [...path.matchAll(/:([A-Za-z_][A-Za-z0-9_]*)/g)].map(([, name]) => {
    const param = doc?.params?.[name];
    const schema = param?.schema ? (z.toJSONSchema(param.schema, { io: 'input' }) as JsonSchema) : { type: 'string' };
    const { $schema: _dialect, ...rest } = schema;
    return { name, in: 'path', required: true, ...(param ? { description: param.description } : {}), schema: withoutFormatPatterns(rest) };
  });
}

/** `GET /v1/subscriptions/:id/usage` -> `getV1SubscriptionsByIdUsage`: stable, unique, and what clients call. */
export function operationIdOf(method: string, path: string): string {
  const words = path
    .split('/')
    .filter(Boolean)
    .map((segment) => (segment.startsWith(':') ? `By${pascal(segment.slice(1))}` : segment.split(/[^A-Za-z0-9]+/).filter(Boolean).map(pascal).join('')));
  return `${method.toLowerCase()}${words.join('')}`;
}

const IDEMPOTENCY_KEY_PARAMETER = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description: 'Makes a retry safe: the first answer is replayed for a repeat within 24 h (per API key); the same key with a different request is refused.',
  schema: { type: 'string', minLength: 1, maxLength: 200 },
};

function operation(route: RouteDescription, components: SchemaComponents): Record<string, unknown> {
  const doc = ROUTE_DOCS[routeKey(route.method, route.path)];
  const operationId = operationIdOf(route.method, route.path);
  const responses: Record<string, unknown> = {};
  for (const [status, response] of Object.entries(doc?.responses ?? { 200: { description: 'Undocumented.' } })) {
    const content = response.schema
      ? { 'application/json': { schema: components.ref(response.schema, 'output', `${pascal(operationId)}Response`), ...(response.example !== undefined ? { example: response.example } : {}) } }
      : response.contentType
        ? Object.fromEntries([response.contentType].flat().map((type) => [type, { schema: { type: 'string' } }]))
        : undefined;
    responses[status] = { description: response.description, ...(content ? { content } : {}) };
  }
  Object.assign(responses, problemResponses(problemsOf(route.method, route.grants, doc)));

  const parameters = [
    ...pathParameters(route.path, doc),
    ...(doc?.query ? queryParameters(doc.query) : []),
    ...(route.method === 'POST' && !route.grants.includes('public') ? [IDEMPOTENCY_KEY_PARAMETER] : []),
  ];
  const roles = route.grants.includes('public') ? 'Public: no API key.' : `Keys: admin${route.grants.map((grant) => `, ${grant}`).join('')}.`;
  return {
    operationId,
    summary: doc?.summary ?? 'Undocumented route',
    description: [doc?.description, roles].filter(Boolean).join('\n\n'),
    tags: [doc?.tag ?? 'Undocumented'],
    security: securityOf(route.grants),
    ...(parameters.length ? { parameters } : {}),
    ...(doc?.body
      ? {
          requestBody: {
            required: doc.bodyRequired ?? true,
            content: {
              'application/json': {
                schema: components.ref(doc.body, 'input', `${pascal(operationId)}Request`),
                ...(doc.bodyExample !== undefined ? { example: doc.bodyExample } : {}),
              },
            },
          },
        }
      : {}),
    responses,
  };
}

/** The document for these routes (describeRoutes(app)): every route, documented or not (the coverage test tells). */
export function buildOpenApiDocument(routes: readonly RouteDescription[]): OpenApiDocument {
  const components = new SchemaComponents();
  components.ref(problemResponse, 'output', 'ProblemResponse');
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of [...routes].sort((a, b) => a.path.localeCompare(b.path))) {
    const path = openApiPath(route.path);
    paths[path] = { ...paths[path], [route.method.toLowerCase()]: operation(route, components) };
  }
  const used = new Set(Object.values(paths).flatMap((ops) => Object.values(ops).flatMap((op) => (op as { tags: string[] }).tags)));
  const tags = [...TAGS.filter((tag) => used.has(tag.name)), ...[...used].filter((name) => !TAGS.some((tag) => tag.name === name)).map((name) => ({ name }))];
  return {
    openapi: OPENAPI_VERSION,
    info: {
      title: 'meterloop billing API',
      version: API_VERSION,
      description:
        'Subscriptions with usage- and outcome-based pricing. Money is a decimal string ("12.50"), never a JSON number. ' +
        'Every request but the public ones sends `Authorization: Bearer <API key>`; each operation lists the roles it takes. ' +
        'Errors are `application/problem+json` with a stable snake_case `code`. POSTs take an `Idempotency-Key`.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: 'http://localhost:3000', description: 'npm start' }],
    tags,
    paths,
    components: {
      schemas: components.toJson(),
      securitySchemes: Object.fromEntries(
        Object.entries(SECURITY_SCHEMES).map(([name, description]) => [name, { type: 'http', scheme: 'bearer', description }]),
      ),
    },
  };
}

/** The document of a running app (built once per app: its routes do not change after createApp). */
const documents = new WeakMap<Express, OpenApiDocument>();
export function openApiDocument(app: Express): OpenApiDocument {
  let document = documents.get(app);
  if (!document) {
    document = buildOpenApiDocument(describeRoutes(app));
    documents.set(app, document);
  }
  return document;
}
