/**
 * The contract covers the API exactly: every route Express has is documented in api/openapi-routes.ts, and every
 * documented route exists. Adding a route without documentation fails here.
 */
import type { Express } from 'express';
import { offlineApp } from '../../api/openapi-offline';
import { ROUTE_DOCS } from '../../api/openapi-routes';
import { openApiDocument, openApiPath, routeKey } from '../../api/openapi';
import { listRoutes } from '../../api/route-declarations';

let app: Express;
let close: () => Promise<void>;

beforeAll(() => {
  ({ app, close } = offlineApp());
});

afterAll(() => close());

test('every registered route is documented in api/openapi-routes.ts', () => {
  const undocumented = listRoutes(app)
    .map(({ method, path }) => routeKey(method, path))
    .filter((key) => !ROUTE_DOCS[key]);
  expect(undocumented).toEqual([]);
});

test('every documented route is registered', () => {
  const registered = new Set(listRoutes(app).map(({ method, path }) => routeKey(method, path)));
  expect(Object.keys(ROUTE_DOCS).filter((key) => !registered.has(key))).toEqual([]);
});

test('the served document has one operation per registered route, with its roles as security', () => {
  const document = openApiDocument(app);
  const operations = Object.entries(document.paths as Record<string, Record<string, { security: unknown[]; operationId: string }>>).flatMap(([path, methods]) =>
    Object.keys(methods).map((method) => routeKey(method, path)),
  );
  expect(operations.sort()).toEqual(listRoutes(app).map(({ method, path }) => routeKey(method, openApiPath(path))).sort());
  expect(document.paths['/v1/customers'].post.security).toEqual([{ admin_key: [] }]);
  expect(document.paths['/v1/subscriptions/{id}/usage'].get.security).toEqual([{ admin_key: [] }, { app_key: [] }, { finance_key: [] }, { customer_usage_token: [] }]);
  expect(document.paths['/healthz'].get.security).toEqual([]);
  const ids = Object.values(document.paths as Record<string, Record<string, { operationId: string }>>).flatMap((methods) => Object.values(methods).map((op) => op.operationId));
  expect(new Set(ids).size).toBe(ids.length);
});

test('an operation lists the problem codes its route answers, by status', () => {
  const cancel = openApiDocument(app).paths['/v1/subscriptions/{id}/cancel'].post;
  expect(cancel.responses['409'].content['application/problem+json'].schema.allOf[1].properties.code.enum).toEqual(
    expect.arrayContaining(['subscription_already_canceled', 'idempotency_key_reused']),
  );
  expect(cancel.responses['404'].content['application/problem+json'].schema.allOf[1].properties.code.enum).toEqual(['subscription_not_found']);
  expect(cancel.responses['401']).toBeDefined();
  expect(cancel.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'Idempotency-Key', in: 'header' })]));
});
