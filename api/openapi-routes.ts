/**
 * What each route does, for the OpenAPI document (api/openapi.ts): summary, parameters, request and response
 * schemas (the same zod schemas the handlers parse with), the problem codes the route itself answers, examples.
 *
 * Keyed by `METHOD /express/template`, exactly as listRoutes(app) names the routes. Who may call a route is not
 * repeated here: the document reads it from the route's own declaration (declareRoutes' `allow`). A route that is
 * registered without an entry here, or an entry without a route, fails test/unit/openapi-coverage.test.ts.
 */
import { z } from 'zod';
import type { ProblemCode } from './problem';
import {
  apiKeyResponse,
  budgetBody,
  budgetResponse,
  cancelSubscriptionBody,
  cancelSubscriptionResponse,
  createApiKeyBody,
  createCustomerBody,
  createdApiKeyResponse,
  createdWebhookEndpointResponse,
  createMetricBody,
  createCostTableBody,
  costTableListQuery,
  costTableResponse,
  createPlanBody,
  createSubscriptionBody,
  createUsageTokenBody,
  createWebhookEndpointBody,
  creditNoteResponse,
  currentUsageResponse,
  customerResponse,
  dailyUsageResponse,
  emptyBody,
  findingsResponse,
  ingestionResponse,
  invoiceListResponse,
  invoiceResponse,
  lateUsageResponse,
  listApiKeysQuery,
  listInvoicesQuery,
  livenessResponse,
  marginReportQuery,
  marginReportResponse,
  metricResponse,
  pauseSubscriptionBody,
  pauseSubscriptionResponse,
  planChangeBody,
  planChangeResponse,
  planResponse,
  readinessResponse,
  refundInvoiceBody,
  refundListResponse,
  rerateBody,
  rerateDecisionBody,
  rerateResponse,
  retryFailedStepResponse,
  revokeApiKeyBody,
  subscriptionDetailResponse,
  createdSubscriptionResponse,
  uncoveredUsageQuery,
  uncoveredUsageResponse,
  subscriptionStatusResponse,
  updatePaymentMethodBody,
  usageEventBody,
  usageEventsEnvelope,
  usageTokenOverviewResponse,
  usageTokenResponse,
  webhookDeliveriesResponse,
  webhookEndpointResponse,
  walletResponse,
  walletGrantResponse,
  walletSettingsResponse,
  walletTopUpResponse,
  entitlementResponse,
  entitlementsResponse,
  withdrawScheduledChangeResponse,
} from './schemas';
import { grantBody, settingsBody, walletQuery } from './routes/wallets';
import { topUpBody } from './routes/wallet-top-ups';
import { subscriptionInvoicesQuery } from './routes/customer-usage';
import { invoiceDocumentQuery } from './routes/invoice-documents';
import { findingsQuery } from './routes/reconciliation';
import { importSubscriptionsDocumentedBody, importSubscriptionsResponse } from './subscription-import';

export interface ResponseDoc {
  readonly description: string;
  /** JSON body schema (application/json); omit for non-JSON bodies and give their `contentType`(s). */
  readonly schema?: z.ZodType;
  readonly contentType?: string | readonly string[];
  readonly example?: unknown;
}

export interface RouteDoc {
  readonly summary: string;
  readonly description?: string;
  /** The group the reference page lists the route under. */
  readonly tag: string;
  /** Path parameters by name (every `:name` of the path; a plain string when not listed). */
  readonly params?: Readonly<Record<string, { readonly description: string; readonly schema?: z.ZodType }>>;
  readonly query?: z.ZodType;
  readonly body?: z.ZodType;
  /** False when the route accepts no body at all (default: required when `body` is given). */
  readonly bodyRequired?: boolean;
  readonly bodyExample?: unknown;
  /** Success answers by status. */
  readonly responses: Readonly<Record<number, ResponseDoc>>;
  /** Problem codes this route's own handler answers (the ones every route can answer are added by api/openapi.ts). */
  readonly problems?: readonly ProblemCode[];
}

/** The reference page's groups, in the order a new integration meets them. */
export const TAGS: readonly { readonly name: string; readonly description: string }[] = [
  { name: 'Customers', description: 'Who is billed, in which currency, with which payment method.' },
  { name: 'Metrics', description: 'What usage events count: event type, aggregation, property.' },
  { name: 'Wallets and entitlements', description: 'Prepaid credit grants, balances, and "may this customer do X now?" checks.' },
  { name: 'Plans', description: 'Prices: a flat fee per interval and charges per metric. Immutable versions.' },
  { name: 'Subscriptions', description: 'A customer on a plan: one Temporal workflow each, billing period after period.' },
  { name: 'Subscription lifecycle', description: 'Plan changes, pause and resume, retention and win-back answers, retries.' },
  { name: 'Usage', description: 'Usage events in, and what they cost so far.' },
  { name: 'Invoices', description: 'Finalized invoices and credit notes, never edited; JSON, HTML and PDF.' },
  { name: 'Refunds', description: 'Credit notes against paid invoices, refunded through the gateway.' },
  { name: 'Re-rating', description: 'Corrections to a finalized invoice: proposed, then approved or rejected by finance.' },
  { name: 'Reports', description: 'Finance reports.' },
  { name: 'Reconciliation', description: "The janitor's findings." },
  { name: 'Webhooks', description: 'Signed event deliveries to your endpoints.' },
  { name: 'API keys', description: 'Keys by role; customer usage tokens.' },
  { name: 'Customer usage page', description: 'The page a customer opens with a usage token, and what it reads.' },
  { name: 'Operations', description: 'Health, readiness, metrics and this contract.' },
];

const ok = (description: string, schema: z.ZodType, example?: unknown): Readonly<Record<number, ResponseDoc>> => ({ 200: { description, schema, example } });
const created = (description: string, schema: z.ZodType, example?: unknown): Readonly<Record<number, ResponseDoc>> => ({ 201: { description, schema, example } });

const uuid = z.uuid();
const subscriptionId = { id: { description: 'The subscription id.', schema: uuid } };
const invoiceId = { id: { description: 'The invoice (or credit note) id.', schema: uuid } };
const customerId = { id: { description: 'The customer id.', schema: uuid } };
const rerateId = { id: { description: 'The re-rating id.', schema: uuid } };
/** Lifecycle updates the workflow may refuse in any state that does not allow them. */
const WORKFLOW_STATE_PROBLEMS: readonly ProblemCode[] = [
  'subscription_not_found',
  'subscription_already_canceled',
  'subscription_not_active',
  'subscription_needs_attention',
  'subscription_suspended',
  'subscription_paused',
  'period_opening',
  'temporal_unavailable',
];

const EXAMPLE_ID = '6f1c2a4e-8d3b-4c5a-9e7f-1a2b3c4d5e6f';
const customerExample = {
  id: EXAMPLE_ID,
  external_id: 'acme',
  name: 'Acme Inc.',
  email: 'billing@acme.test',
  currency: 'USD',
  payment_method: 'pm_sandbox_ok',
  created_at: '2026-12-05T10:00:00.000Z',
};
const subscriptionExample = {
  id: EXAMPLE_ID,
  customer_id: '0a7e9c1d-2b3f-4a5e-8c6d-7e8f9a0b1c2d',
  plan: { id: '1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7a8b', code: 'starter', version: 1 },
  status: 'scheduled',
  workflow_id: `subscription:${EXAMPLE_ID}`,
  start_at: '2026-12-05T10:00:00.000Z',
  trial_end: null,
  current_period_start: null,
  current_period_end: null,
  canceled_at: null,
  cancel_reason: null,
  created_at: '2026-12-05T10:00:00.000Z',
};

/** The usage page's static files (api/routes/usage-page.ts). */
const usagePageAsset = (summary: string, contentType: string): RouteDoc => ({
  summary,
  tag: 'Customer usage page',
  responses: { 200: { description: 'The file.', contentType } },
});

const invoiceDocument = (format: 'HTML' | 'PDF', contentType: string): RouteDoc => ({
  summary: `The invoice or credit note as a ${format} document`,
  description: 'Rendered from the stored rows: every line with its breakdown, a total equal to the sum of the lines. `download=1` asks the browser to save it.',
  tag: 'Invoices',
  params: invoiceId,
  query: invoiceDocumentQuery,
  responses: { 200: { description: `The ${format} document.`, contentType } },
  problems: ['invoice_not_found'],
});

const retentionAnswer = (answer: 'accept' | 'decline'): RouteDoc => ({
  summary: `${answer === 'accept' ? 'Accept' : 'Decline'} the retention offer`,
  description:
    answer === 'accept'
      ? 'The pending cancellation is withdrawn and the discount applies to the next invoices.'
      : 'The cancellation the offer was made for goes ahead.',
  tag: 'Subscription lifecycle',
  params: subscriptionId,
  body: emptyBody,
  bodyRequired: false,
  responses: ok('The subscription status after the answer.', subscriptionStatusResponse),
  problems: [...WORKFLOW_STATE_PROBLEMS, 'no_retention_offer'],
});

const rerateDecision = (decision: 'approve' | 'reject'): RouteDoc => ({
  summary: `${decision === 'approve' ? 'Approve' : 'Reject'} a re-rating proposal`,
  description:
    decision === 'approve'
      ? 'Issues the proposed adjustment invoice or credit note; the original invoice is never edited.'
      : 'Nothing is issued; the reason is kept in the audit log.',
  tag: 'Re-rating',
  params: rerateId,
  body: rerateDecisionBody,
  responses: ok('The re-rating after the decision.', rerateResponse),
  problems: ['rerate_not_found', 'rerate_not_awaiting_decision', 'decision_reason_required', 'temporal_unavailable'],
});

export const ROUTE_DOCS: Readonly<Record<string, RouteDoc>> = {
  // --- Operations ---
  'GET /healthz': { summary: 'Liveness', tag: 'Operations', responses: ok('The process is up.', livenessResponse) },
  'GET /readyz': {
    summary: 'Readiness',
    description: 'Postgres and Temporal answer (and, when READINESS_REQUIRE_WORKER=true, a worker polls). 503 `not_ready` otherwise, with the failing checks.',
    tag: 'Operations',
    responses: ok('Ready to serve.', readinessResponse),
    problems: ['not_ready'],
  },
  'GET /metrics': { summary: 'Prometheus metrics', tag: 'Operations', responses: { 200: { description: 'Prometheus text exposition format.', contentType: 'text/plain' } } },
  'GET /openapi.json': {
    summary: 'This API contract',
    description: 'The OpenAPI 3.1 document, generated from the zod schemas the handlers validate with.',
    tag: 'Operations',
    responses: ok('The OpenAPI document.', z.record(z.string(), z.unknown())),
  },
  'GET /docs': { summary: 'API reference page', tag: 'Operations', responses: { 200: { description: 'A browsable reference of this document.', contentType: 'text/html' } } },
  'GET /docs/:asset': {
    summary: 'API reference page assets',
    description: 'Scripts and styles of the reference page, served by the API itself (no CDN).',
    tag: 'Operations',
    params: { asset: { description: 'The file name.' } },
    responses: { 200: { description: 'The file.', contentType: ['text/css', 'text/javascript'] } },
    problems: ['not_found'],
  },

  // --- Catalog ---
  'POST /v1/customers': {
    summary: 'Create a customer',
    tag: 'Customers',
    body: createCustomerBody,
    bodyExample: { external_id: 'acme', name: 'Acme Inc.', email: 'billing@acme.test', currency: 'USD', payment_method: 'pm_sandbox_ok' },
    responses: created('The customer.', customerResponse, customerExample),
    problems: ['customer_already_exists'],
  },
  'GET /v1/customers/:id': { summary: 'A customer', tag: 'Customers', params: customerId, responses: ok('The customer.', customerResponse, customerExample), problems: ['customer_not_found'] },
  'POST /v1/customers/:id/payment-method': {
    summary: "Replace the customer's payment method",
    description: 'Past-due subscriptions of the customer retry their open invoice at once.',
    tag: 'Customers',
    params: customerId,
    body: updatePaymentMethodBody,
    bodyExample: { payment_method: 'pm_sandbox_ok' },
    responses: ok('The customer with its new payment method.', customerResponse),
    problems: ['customer_not_found', 'temporal_unavailable'],
  },
  'POST /v1/customers/:id/usage-tokens': {
    summary: 'Mint a customer usage token',
    description: "A short-lived token for the customer's own usage page: it reads that customer's subscriptions' usage and invoices and nothing else.",
    tag: 'Customer usage page',
    params: customerId,
    body: createUsageTokenBody,
    bodyRequired: false,
    bodyExample: { expires_in: 3600 },
    responses: created('The token (shown once).', usageTokenResponse),
    problems: ['customer_not_found'],
  },
  'POST /v1/plans': {
    summary: 'Publish a plan (or its next version)',
    description: 'Plans are immutable: posting an existing code publishes its next version; subscriptions keep theirs.',
    tag: 'Plans',
    body: createPlanBody,
    bodyExample: {
      code: 'starter',
      name: 'Starter',
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '20.00',
      charges: [{ metric_code: 'api_calls', price: { model: 'per_unit', unitPrice: '0.002' }, included_units: '1000' }],
    },
    responses: created('The published plan version.', planResponse),
    problems: ['invalid_price', 'invalid_charge_options', 'metric_not_found', 'charge_metric_mismatch', 'invalid_dimensions', 'ambiguous_dimension_prices', 'invalid_usage_thresholds', 'plan_version_conflict'],
  },
  'GET /v1/plans': { summary: 'Every plan version', tag: 'Plans', responses: ok('The plans.', z.object({ data: z.array(planResponse) })) },
  'GET /v1/plans/:code': {
    summary: "A plan's newest version",
    tag: 'Plans',
    params: { code: { description: 'The plan code.' } },
    responses: ok('The plan.', planResponse),
    problems: ['plan_not_found'],
  },
  'POST /v1/metrics': {
    summary: 'Create a billable metric',
    tag: 'Metrics',
    body: createMetricBody,
    description:
      'A seat-like metric uses `prorated_sum` (each event\'s property is a signed change, +1 a seat added, -1 removed) or `prorated_latest` (each event\'s property is the new number of seats): its period quantity is the level prorated over the period by the second, starting from the level carried from earlier periods (docs/pricing.md "Seats prorated within the period").',
    bodyExample: { code: 'api_calls', name: 'API calls', event_type: 'api.call', aggregation: 'count' },
    responses: created('The metric.', metricResponse),
    problems: ['metric_already_exists', 'prorated_metric_not_groupable'],
  },
  'POST /v1/metrics/:code/cost-tables': {
    summary: "Set a metric's unit costs from an instant on",
    description:
      'What one unit costs us, in `currency`, per combination of the metric\'s group_by (a match leaves a dimension out as a wildcard; `{}` matches everything; the most specific match wins), from `effective_from` until the metric\'s next table in that currency (each currency is its own timeline). Only a subscription whose plan bills in that currency is costed with it; usage no table of its currency costs is uncosted. Each event is costed by the table in effect at its own timestamp (cost_plus prices, the margins report). A table where two matches tie is refused (`ambiguous_cost_table`); a table is never edited: the same body again answers 200, a different one for the same currency and instant `cost_table_exists`.',
    tag: 'Metrics',
    params: { code: { description: "The metric's code." } },
    body: createCostTableBody,
    bodyExample: { currency: 'USD', effective_from: '2026-12-15T00:00:00Z', costs: [{ match: {}, unit_cost: '0.000002' }, { match: { model: 'large' }, unit_cost: '0.00001' }, { match: { model: 'large', direction: 'output' }, unit_cost: '0.00003' }] },
    responses: { ...created('The stored table.', costTableResponse), ...ok('The same table was stored before (a replay).', costTableResponse) },
    problems: ['not_found', 'invalid_cost_table', 'ambiguous_cost_table', 'cost_table_exists'],
  },
  'GET /v1/metrics/:code/cost-tables': {
    summary: "A metric's cost tables, by currency, oldest first",
    tag: 'Metrics',
    params: { code: { description: "The metric's code." } },
    query: costTableListQuery,
    responses: ok('The tables.', z.object({ data: z.array(costTableResponse) })),
    problems: ['not_found'],
  },
  'GET /v1/metrics': { summary: 'Every billable metric', tag: 'Metrics', responses: ok('The metrics.', z.object({ data: z.array(metricResponse) })) },

  // --- Usage ---
  'POST /v1/events': {
    summary: 'Ingest usage events',
    description:
      'One event, or `{ "events": [...] }` with up to 1,000. Each event is judged on its own: valid ones are stored exactly once (an identical resend of an id counts as a duplicate; the same id with another type, timestamp or properties is refused as `event_id_conflict`), the others are listed by index with a code. When every event is rejected the answer is 422 `batch_rejected` and nothing is stored.',
    tag: 'Usage',
    body: z.union([usageEventBody, usageEventsEnvelope]),
    bodyExample: { id: 'evt-0001', customer: 'acme', type: 'api.call', timestamp: '2026-12-05T10:00:00.000Z', properties: { endpoint: '/search' } },
    responses: ok('What was stored.', ingestionResponse, { accepted: 1, duplicates: 0, rejected: 0, errors: [] }),
    problems: ['batch_rejected'],
  },
  'GET /v1/subscriptions/:id/usage': {
    summary: 'Usage of the open period, rated',
    description: 'What the usage part of the invoice would be if the period closed now (the same rating function as the invoice), and the fee that invoice bills in advance (`projected.fee`): together, its total.',
    tag: 'Usage',
    params: subscriptionId,
    responses: ok('The open period so far.', currentUsageResponse),
    problems: ['subscription_not_found', 'seat_level_negative', 'amount_out_of_range'],
  },
  'GET /v1/subscriptions/:id/usage/daily': {
    summary: "The open period's usage per UTC day",
    tag: 'Usage',
    params: subscriptionId,
    responses: ok('Per metric and day.', dailyUsageResponse),
    problems: ['subscription_not_found'],
  },
  'GET /v1/subscriptions/:id/late-usage': {
    summary: 'Late events waiting for re-rating',
    description: "Events that arrived after their period was invoiced; a re-rating with `include_late_usage` bills them.",
    tag: 'Usage',
    params: subscriptionId,
    responses: ok('The late events.', lateUsageResponse),
    problems: ['subscription_not_found'],
  },
  'PUT /v1/subscriptions/:id/budget': {
    summary: 'Set or remove the spending budget',
    tag: 'Usage',
    params: subscriptionId,
    body: budgetBody,
    bodyExample: { amount: '500.00', thresholds: ['50', '80', '100'] },
    responses: ok('The budget now in force.', budgetResponse),
    problems: ['subscription_not_found'],
  },

  // --- Subscriptions ---
  'POST /v1/subscriptions': {
    summary: 'Subscribe a customer to a plan',
    description:
      'Starts the subscription workflow. With an Idempotency-Key the subscription id comes from the request, so a repeat finds the one it created. Refused with `metered_usage_overlap` (naming `conflicting_subscription_id` and `event_types`) when another subscription of the customer prices one of the plan\'s event types over an overlapping stretch: a customer\'s usage of an event type is billed by at most one subscription at a time.',
    tag: 'Subscriptions',
    body: createSubscriptionBody,
    bodyExample: { customer_id: '0a7e9c1d-2b3f-4a5e-8c6d-7e8f9a0b1c2d', plan_code: 'starter' },
    responses: created('The subscription; `uncovered_usage` when its start leaves stored events of its types unbilled.', createdSubscriptionResponse, subscriptionExample),
    problems: ['customer_not_found', 'plan_not_found', 'currency_mismatch', 'metered_usage_overlap', 'workflow_unavailable', 'temporal_unavailable'],
  },
  'POST /v1/subscriptions/import': {
    summary: 'Import subscriptions running in another system',
    description:
      'Up to 1,000 rows, each with its billing anchor and the current period start the other system already invoiced; the next invoice comes at that period\'s end. Idempotent per external id: a rerun reports `existing` and creates nothing. Each row is answered on its own (`created`, `existing` or `rejected` with a problem code, `metered_usage_overlap` for a row pricing an event type another subscription of its customer, stored or an earlier row, prices from its current period on); `npm run import` sends a CSV file through the same code.',
    tag: 'Subscriptions',
    body: importSubscriptionsDocumentedBody,
    bodyExample: {
      rows: [{ external_id: 'legacy-42', customer_external_id: 'acme', plan_code: 'starter', billing_anchor: '2026-11-01T00:00:00Z', current_period_start: '2026-12-01T00:00:00Z' }],
    },
    responses: ok('One report line per row.', importSubscriptionsResponse),
  },
  'GET /v1/subscriptions/:id': {
    summary: 'A subscription with its live workflow state',
    description: 'Stored state plus the workflow\'s live state; when Temporal or the worker cannot answer in time, `live` is null and `live_unavailable` says why.',
    tag: 'Subscriptions',
    params: subscriptionId,
    responses: ok('The subscription.', subscriptionDetailResponse),
    problems: ['subscription_not_found'],
  },
  'POST /v1/subscriptions/:id/cancel': {
    summary: 'Cancel a subscription',
    description: '`now` bills the open period and ends; `period_end` ends at the period end. A retention offer may be made first.',
    tag: 'Subscriptions',
    params: subscriptionId,
    body: cancelSubscriptionBody,
    bodyExample: { at: 'period_end', reason: 'switching providers' },
    responses: ok('The status and when the cancellation takes effect.', cancelSubscriptionResponse),
    problems: ['subscription_not_found', 'subscription_already_canceled', 'invalid_cancel_timing', 'subscription_needs_attention', 'subscription_suspended', 'subscription_paused', 'retention_offer_pending', 'temporal_unavailable'],
  },
  'GET /v1/subscriptions/:id/invoices': {
    summary: "The subscription's issued invoices and credit notes",
    tag: 'Invoices',
    params: subscriptionId,
    query: subscriptionInvoicesQuery,
    responses: ok('Newest first (created, then id). More than `limit`: `has_more`; the next page is `starting_after` = `next_cursor`.', invoiceListResponse),
    problems: ['subscription_not_found'],
  },
  'POST /v1/subscriptions/:id/plan-change': {
    summary: 'Change the plan',
    description: '`immediate` prorates and issues a proration invoice; `period_end` schedules the change. Before the first period (a later start, or a trial) nothing is billed: either switches the plan now (answered `immediate`, no invoice), the trial keeps its end and the first period bills the new plan. Refused with `metered_usage_overlap` when another subscription of the customer prices one of the new plan\'s event types from then on, and a `period_end` change with `validation_failed` (on `plan_code`) when the current plan\'s usage grace window is not shorter than the new billing interval (the new plan\'s first period waits for it).',
    tag: 'Subscription lifecycle',
    params: subscriptionId,
    body: planChangeBody,
    bodyExample: { plan_code: 'pro', effective: 'immediate' },
    responses: ok('What will happen, and the proration invoice of an immediate change.', planChangeResponse),
    problems: [...WORKFLOW_STATE_PROBLEMS, 'plan_not_found', 'currency_mismatch', 'same_plan', 'interval_change_needs_period_end', 'retention_offer_pending', 'metered_usage_overlap'],
  },
  'DELETE /v1/subscriptions/:id/scheduled-change': {
    summary: 'Withdraw a scheduled plan change',
    tag: 'Subscription lifecycle',
    params: subscriptionId,
    body: emptyBody,
    bodyRequired: false,
    responses: ok('Whether a change was withdrawn.', withdrawScheduledChangeResponse),
    problems: [...WORKFLOW_STATE_PROBLEMS, 'no_scheduled_change'],
  },
  'POST /v1/subscriptions/:id/pause': {
    summary: 'Pause a subscription',
    description: 'No periods are billed and usage is refused while paused; `until` resumes automatically.',
    tag: 'Subscription lifecycle',
    params: subscriptionId,
    body: pauseSubscriptionBody,
    bodyRequired: false,
    responses: ok('The new status.', pauseSubscriptionResponse),
    problems: [...WORKFLOW_STATE_PROBLEMS, 'pause_until_in_past', 'retention_offer_pending'],
  },
  'POST /v1/subscriptions/:id/resume': {
    summary: 'Resume a paused subscription',
    tag: 'Subscription lifecycle',
    params: subscriptionId,
    body: emptyBody,
    bodyRequired: false,
    responses: ok('The new status.', subscriptionStatusResponse),
    problems: [...WORKFLOW_STATE_PROBLEMS, 'subscription_not_paused'],
  },
  'POST /v1/subscriptions/:id/retention/accept': retentionAnswer('accept'),
  'POST /v1/subscriptions/:id/retention/decline': retentionAnswer('decline'),
  'POST /v1/subscriptions/:id/retry': {
    summary: 'Retry the failed billing step',
    description: 'After ops fixed the data behind a `needs_attention` subscription: the workflow runs that step again. Accepted, not done.',
    tag: 'Subscription lifecycle',
    params: subscriptionId,
    body: emptyBody,
    bodyRequired: false,
    responses: { 202: { description: 'The retry is under way.', schema: retryFailedStepResponse } },
    problems: [...WORKFLOW_STATE_PROBLEMS, 'no_failed_step'],
  },
  'POST /v1/subscriptions/:id/win-back/accept': {
    summary: 'Accept the win-back offer',
    tag: 'Subscription lifecycle',
    params: subscriptionId,
    body: emptyBody,
    bodyRequired: false,
    responses: ok('The new status.', subscriptionStatusResponse),
    problems: [...WORKFLOW_STATE_PROBLEMS, 'no_win_back_offer', 'metered_usage_overlap'],
  },

  // --- Invoices, refunds, re-rating ---
  'GET /v1/invoices': { summary: 'List invoices', tag: 'Invoices', query: listInvoicesQuery, responses: ok('Newest first (period start, created, id). More than `limit`: `has_more`; the next page is `starting_after` = `next_cursor`.', invoiceListResponse) },
  'GET /v1/invoices/:id': { summary: 'An invoice with its lines', tag: 'Invoices', params: invoiceId, responses: ok('The invoice.', invoiceResponse), problems: ['invoice_not_found'] },
  'GET /v1/invoices/:id/document.html': invoiceDocument('HTML', 'text/html'),
  'GET /v1/invoices/:id/document.pdf': invoiceDocument('PDF', 'application/pdf'),
  'POST /v1/invoices/:id/refunds': {
    summary: 'Refund (part of) a paid invoice',
    description: 'Issues a credit note and refunds it through the gateway: 201 new, 200 a replay of the same Idempotency-Key, 202 when the gateway was unreachable and the refund is pending (repeat the request to complete it). Refunding a wallet top-up invoice takes the same amount of the credit it bought back from the wallet; more than is left unspent of it is refused (refund_exceeds_unspent_credit).',
    tag: 'Refunds',
    params: invoiceId,
    body: refundInvoiceBody,
    bodyExample: { amount: '5.00', reason: 'service outage credit' },
    responses: {
      200: { description: 'A replay: the credit note this Idempotency-Key issued.', schema: creditNoteResponse },
      201: { description: 'The credit note and its refund.', schema: creditNoteResponse },
      202: { description: 'The credit note; its refund is pending.', schema: creditNoteResponse },
    },
    problems: ['invoice_not_found', 'invoice_not_paid', 'refund_exceeds_paid', 'refund_exceeds_unspent_credit', 'currency_mismatch'],
  },
  'GET /v1/invoices/:id/refunds': {
    summary: "An invoice's credit notes and what is left to refund",
    tag: 'Refunds',
    params: invoiceId,
    responses: ok('The credit notes.', refundListResponse),
    problems: ['invoice_not_found'],
  },
  'POST /v1/invoices/:id/rerate': {
    summary: 'Ask for a re-rating of a finalized invoice',
    description: 'A re-rating workflow computes the difference (with a corrected plan version and/or late usage) and proposes it; finance approves or rejects.',
    tag: 'Re-rating',
    params: invoiceId,
    body: rerateBody,
    bodyExample: { reason: 'late events from the EU region', include_late_usage: true },
    responses: { 202: { description: 'The re-rating, computing.', schema: rerateResponse } },
    problems: ['invoice_not_found', 'invoice_not_rerateable', 'plan_not_found', 'currency_mismatch', 'workflow_unavailable', 'temporal_unavailable'],
  },
  'GET /v1/rerates/:id': {
    summary: 'A re-rating',
    description: 'Status `failed`: its workflow failed before carrying it out (nothing was issued); `failure` gives the code and message. Ask for a new re-rating once the cause is fixed.',
    tag: 'Re-rating',
    params: rerateId,
    responses: ok('The re-rating and its proposal.', rerateResponse),
    problems: ['rerate_not_found'],
  },
  'POST /v1/rerates/:id/approve': rerateDecision('approve'),
  'POST /v1/rerates/:id/reject': rerateDecision('reject'),

  // --- Finance and ops ---
  'GET /v1/reports/margins': {
    summary: 'Revenue, usage cost and margin per subscription',
    description: 'For [from, to), ascending by margin so loss-makers come first; totals per currency cover every subscription of the window.',
    tag: 'Reports',
    query: marginReportQuery,
    responses: ok('The report.', marginReportResponse),
  },
  'GET /v1/reconciliation/findings': {
    summary: 'What the janitor found',
    tag: 'Reconciliation',
    query: findingsQuery,
    responses: ok('The findings.', findingsResponse),
  },
  'POST /v1/webhook-endpoints': {
    summary: 'Register a webhook endpoint',
    tag: 'Webhooks',
    body: createWebhookEndpointBody,
    bodyExample: { url: 'https://example.test/hooks/meterloop', event_types: ['invoice.*'] },
    responses: created('The endpoint with its signing secret (shown once).', createdWebhookEndpointResponse),
  },
  'GET /v1/webhook-endpoints': { summary: 'Webhook endpoints', tag: 'Webhooks', responses: ok('The endpoints (secrets hidden).', z.object({ data: z.array(webhookEndpointResponse) })) },
  'GET /v1/webhook-endpoints/:id/deliveries': {
    summary: "An endpoint's delivery log",
    tag: 'Webhooks',
    params: { id: { description: 'The webhook endpoint id.', schema: uuid } },
    responses: ok('Attempts, last status code, next try.', webhookDeliveriesResponse),
    problems: ['not_found'],
  },

  // --- Wallets and entitlements ---
  'GET /v1/customers/:id/wallet': {
    summary: "The customer's prepaid wallet",
    description: 'Balance, what is available after usage not yet invoiced, grants with expiries, the recent ledger and the projected run-out date. A customer without a wallet gets an empty one (`has_wallet: false`).',
    tag: 'Wallets and entitlements',
    params: customerId,
    query: walletQuery,
    responses: ok('The wallet in the currency asked for (the customer\'s by default).', walletResponse),
    problems: ['customer_not_found'],
  },
  'PUT /v1/customers/:id/wallet': {
    summary: "Set the wallet's overdraft and alert thresholds",
    description:
      'Overdraft limit, `low_balance_threshold` (`wallet.low_balance`), auto-recharge (`recharge_threshold` with `recharge_amount`: buy that much when the available balance falls below the threshold, once per crossing) and `grant_expiry_notice` (ISO 8601 duration before an expiry that `grant.expiring` is sent; P7D by default).',
    tag: 'Wallets and entitlements',
    params: customerId,
    body: settingsBody,
    bodyExample: { overdraft_limit: '0.00', low_balance_threshold: '10.00', recharge_threshold: '5.00', recharge_amount: '50.00', grant_expiry_notice: 'P7D' },
    responses: ok('The settings now in force.', walletSettingsResponse),
    problems: ['customer_not_found', 'recharge_settings_incomplete'],
  },
  'POST /v1/customers/:id/wallet/top-ups': {
    summary: 'Buy prepaid credits',
    description:
      "Invoices the amount and charges the customer's payment method through the customer's wallet workflow; the `purchased` grant is created once the charge succeeds, exactly once. 201 when settled (paid with its grant, or declined with the invoice uncollectible and no grant), 202 while the charge is still pending (repeat the request with the same Idempotency-Key, or GET the top-up).",
    tag: 'Wallets and entitlements',
    params: customerId,
    body: topUpBody,
    bodyExample: { amount: '50.00', currency: 'USD', expires_at: '2027-12-31T00:00:00Z' },
    responses: {
      201: { description: 'The settled top-up: paid with its grant, or declined.', schema: walletTopUpResponse },
      202: { description: 'The top-up; its charge is still pending.', schema: walletTopUpResponse },
    },
    problems: ['customer_not_found', 'payment_method_missing', 'temporal_unavailable'],
  },
  'GET /v1/customers/:id/wallet/top-ups/:topUpId': {
    summary: 'A top-up or automatic recharge',
    tag: 'Wallets and entitlements',
    params: { ...customerId, topUpId: { description: 'The top-up id.', schema: uuid } },
    responses: ok('Its status, invoice and grant.', walletTopUpResponse),
    problems: ['customer_not_found', 'not_found'],
  },
  'POST /v1/customers/:id/wallet/grants': {
    summary: 'Grant prepaid credit',
    description: 'A promotional, goodwill or purchased (paid elsewhere) grant; optionally scoped to metrics and expiring.',
    tag: 'Wallets and entitlements',
    params: customerId,
    body: grantBody,
    bodyExample: { amount: '50.00', source: 'promotional', expires_at: '2027-01-01T00:00:00Z' },
    responses: created('The grant.', walletGrantResponse),
    problems: ['customer_not_found'],
  },
  'GET /v1/customers/:id/uncovered-usage': {
    summary: 'Accepted usage no subscription of the customer bills',
    description:
      'The customer\'s accepted, unbilled events whose type and time no subscription of theirs prices, oldest first, each with its `reason`, and `totals` per event type over all of them. Events a period close or a re-rating will still bill (the open period, late usage) are not listed. More than `limit`: `has_more`; the next page is `starting_after` = `next_cursor`.',
    tag: 'Usage',
    params: customerId,
    query: uncoveredUsageQuery,
    responses: ok('The uncovered events.', uncoveredUsageResponse),
    problems: ['customer_not_found'],
  },
  'GET /v1/customers/:id/entitlements': {
    summary: "Every feature the customer's current plans declare",
    tag: 'Wallets and entitlements',
    params: customerId,
    responses: ok('One answer per feature.', entitlementsResponse),
    problems: ['customer_not_found', 'seat_level_negative'],
  },
  'GET /v1/customers/:id/entitlements/:feature': {
    summary: 'May the customer use this feature now?',
    description: 'From the running usage totals and the wallet balance: access, usage and limit in the current period, when it resets.',
    tag: 'Wallets and entitlements',
    params: { ...customerId, feature: { description: 'The feature code.' } },
    responses: ok('The answer (`kind: null` when no current plan declares the feature).', entitlementResponse),
    problems: ['customer_not_found', 'seat_level_negative'],
  },

  // --- API keys ---
  'POST /v1/api-keys': {
    summary: 'Create an API key',
    tag: 'API keys',
    body: createApiKeyBody,
    bodyExample: { name: 'billing app', role: 'app' },
    responses: created('The key; its secret appears only in this answer.', createdApiKeyResponse),
  },
  'GET /v1/api-keys': { summary: 'API keys (without secrets)', tag: 'API keys', query: listApiKeysQuery, responses: ok('The keys.', z.object({ data: z.array(apiKeyResponse) })) },
  'POST /v1/api-keys/:id/revoke': {
    summary: 'Revoke an API key',
    tag: 'API keys',
    params: { id: { description: 'The API key id.', schema: uuid } },
    body: revokeApiKeyBody,
    bodyRequired: false,
    responses: ok('The revoked key.', apiKeyResponse),
    problems: ['api_key_not_found'],
  },

  // --- Customer usage page ---
  'GET /v1/usage-token/me': {
    summary: "The usage token's customer and subscriptions",
    tag: 'Customer usage page',
    responses: ok('The customer and its subscriptions, billing ones first.', usageTokenOverviewResponse),
    problems: ['not_found', 'customer_not_found'],
  },
  'GET /usage': usagePageAsset('The customer usage page', 'text/html'),
  'GET /usage/usage-page.js': usagePageAsset("The usage page's script", 'text/javascript'),
  'GET /usage/usage-page.css': usagePageAsset("The usage page's styles", 'text/css'),
};
