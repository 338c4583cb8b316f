/** The response check the test HTTP helpers run on every answer (test/support/openapi-contract.ts) does reject. */
import { offlineOpenApiDocument } from '../../api/openapi-offline';
import { ResponseContract } from '../support/openapi-contract';

let contract: ResponseContract;
beforeAll(async () => {
  contract = new ResponseContract(await offlineOpenApiDocument());
});

const customer = {
  id: '6f1c2a4e-8d3b-4c5a-9e7f-1a2b3c4d5e6f',
  external_id: 'acme',
  name: 'Acme',
  email: null,
  currency: 'USD',
  payment_method: null,
  created_at: '2026-12-05T10:00:00.000Z',
};
const json = 'application/json; charset=utf-8';
const problem = (code: string, status: number) => ({ type: `https://meterloop.dev/problems/${code}`, title: code, status, code, detail: 'x' });

test('a documented answer passes', () => {
  expect(contract.violations({ method: 'GET', url: `/v1/customers/${customer.id}`, status: 200, contentType: json, json: customer })).toEqual([]);
  expect(contract.violations({ method: 'POST', url: '/v1/customers', status: 201, contentType: json, json: customer })).toEqual([]);
  const notFound = problem('customer_not_found', 404);
  expect(contract.violations({ method: 'GET', url: `/v1/customers/${customer.id}`, status: 404, contentType: 'application/problem+json; charset=utf-8', json: notFound })).toEqual([]);
});

test('a body that does not match its schema, a missing field or an extra one, fails', () => {
  expect(contract.violations({ method: 'GET', url: `/v1/customers/${customer.id}`, status: 200, contentType: json, json: { ...customer, currency: 12 } })).toEqual([
    expect.stringContaining('/currency must be string'),
  ]);
  const { name: _name, ...nameless } = customer;
  expect(contract.violations({ method: 'GET', url: `/v1/customers/${customer.id}`, status: 200, contentType: json, json: nameless })[0]).toContain("must have required property 'name'");
  expect(contract.violations({ method: 'GET', url: `/v1/customers/${customer.id}`, status: 200, contentType: json, json: { ...customer, secret: 'x' } })[0]).toContain('additional properties');
});

test('an undocumented status, problem code, content type or route fails', () => {
  expect(contract.violations({ method: 'GET', url: '/v1/plans', status: 201, contentType: json, json: { data: [] } })[0]).toContain('status 201 is not documented');
  expect(
    contract.violations({ method: 'GET', url: `/v1/customers/${customer.id}`, status: 404, contentType: 'application/problem+json', json: problem('plan_not_found', 404) })[0],
  ).toContain('/code must be equal to one of the allowed values');
  expect(contract.violations({ method: 'POST', url: '/v1/customers', status: 422, contentType: json, json: problem('validation_failed', 422) })[0]).toContain(
    'content type application/json is not documented',
  );
  expect(contract.violations({ method: 'GET', url: '/v1/nowhere', status: 200, contentType: json, json: {} })[0]).toContain('no documented operation');
  // Unknown routes answer the generic problem, which is fine.
  expect(contract.violations({ method: 'GET', url: '/v1/nowhere', status: 404, contentType: 'application/problem+json', json: problem('not_found', 404) })).toEqual([]);
});
