/**
 * What the customer usage page reads besides GET /v1/subscriptions/:id/usage (see docs/usage-page.md):
 *
 *   GET /v1/usage-token/me                   the token's customer and that customer's subscriptions (usage tokens only)
 *   GET /v1/subscriptions/:id/usage/daily    the open period's usage per UTC day and metric, for the chart
 *   GET /v1/subscriptions/:id/invoices       the subscription's issued invoices and the credit notes against them
 *
 * A customer usage token reaches the last two only for its own customer's subscriptions (the customerScope each
 * route declares); everything here is a read.
 */
import type { Router } from 'express';
import { z } from 'zod';
import type { Charge } from '../../domain/rating';
import { findPlan } from '../../store/catalog';
import { CREDIT_NOTE_KIND } from '../../store/credit-notes';
import { dailyUsageForCharges } from '../../store/daily-usage';
import type { Database } from '../../store/database';
import { encodeInvoiceCursor, listSubscriptionInvoices, numberInvoicesAwaitingNumber } from '../../store/invoices';
import type { SubscriptionRow } from '../../store/subscriptions';
import { openStretchOf } from '../../store/plan-changes';
import { usageTokenOverview } from '../../store/usage-token';
import { accessOf } from '../access';
import { foreignInvoiceCursor, invoiceCursorId } from './invoices';
import { findSubscriptionOr404, ownSubscription } from './lookups';
import { ApiProblem } from '../problem';
import { invoiceCursor, pageLimit } from '../schemas';
import { invoiceJson, planJson } from '../serializers';
import { declareRoutes, tokenCustomerOnly } from '../route-declarations';

const iso = (value: Date | null): string | null => (value ? value.toISOString() : null);

/** The order /me lists subscriptions in (the page opens the first): billing ones first, ended ones last. */
const STATUS_ORDER = ['active', 'past_due', 'trialing', 'paused', 'suspended', 'scheduled'];
const statusRank = (status: string): number => (STATUS_ORDER.includes(status) ? STATUS_ORDER.indexOf(status) : STATUS_ORDER.length);

export const subscriptionInvoicesQuery = z.strictObject({
  limit: pageLimit(200, 50),
  /** The `next_cursor` of the previous page (keyset paging: no invoice repeats or is skipped). */
  starting_after: invoiceCursor.optional(),
});

/** GET /v1/usage-token/me: mounted at /v1/usage-token. */
export function usageTokenRouter(db: Database): Router {
  const routes = declareRoutes();

  routes.get('/me', { allow: ['customer_usage'], customerScope: tokenCustomerOnly }, async (_req, res) => {
    const principal = accessOf(res)?.principal;
    // Admin keys pass every access check, but only a usage token speaks for a customer.
    if (!principal?.customerId || principal.role !== 'customer_usage') {
      throw new ApiProblem('not_found', 'GET /v1/usage-token/me describes a customer usage token; this key is not one');
    }
    const { customer, tokenExpiresAt, subscriptions: rows, plans } = await usageTokenOverview(db, principal.customerId, principal.keyId);
    if (!customer) throw new ApiProblem('customer_not_found', 'the customer of this token no longer exists');
    // By status (a stable sort keeps newest first within one status).
    const ordered = [...rows].sort((x, y) => statusRank(x.status) - statusRank(y.status));
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      customer: { id: customer.id, external_id: customer.external_id, name: customer.name, currency: customer.currency },
      token: { expires_at: iso(tokenExpiresAt) },
      subscriptions: ordered.map((row) => {
        const plan = plans.get(row.plan_id)!;
        const terms = planJson(plan);
        return {
          id: row.id,
          status: row.status,
          plan: {
            code: plan.code,
            version: plan.version,
            name: plan.name,
            currency: plan.currency,
            billing_interval: plan.billing_interval,
            flat_fee: terms.flat_fee,
            credit_bucket: terms.credit_bucket,
          },
          start_at: iso(row.start_at),
          current_period_start: iso(row.current_period_start),
          current_period_end: iso(row.current_period_end),
          canceled_at: iso(row.canceled_at),
        };
      }),
    });
  });

  return routes.router;
}

export interface SubscriptionHistoryOptions {
  /** The clock that decides which days of the period have begun (tests on a time-skipping server pass theirs). */
  readonly now?: () => Date;
}

/** GET /v1/subscriptions/:id/usage/daily and /invoices: mounted at /v1/subscriptions. */
export function subscriptionUsageHistoryRouter(db: Database, options: SubscriptionHistoryOptions = {}): Router {
  const routes = declareRoutes();
  const now = options.now ?? (() => new Date());

  const findSubscription = (id: string): Promise<SubscriptionRow> => findSubscriptionOr404(db, id);

  routes.get('/:id/usage/daily', { allow: ['app', 'finance', 'customer_usage'], customerScope: ownSubscription(db) }, async (req, res) => {
    const subscription = await findSubscription(req.params.id);
    const start = subscription.current_period_start;
    const end = subscription.current_period_end;
    res.setHeader('Cache-Control', 'no-store');
    if (!start || !end) {
      res.json({ subscription_id: subscription.id, period: null, timezone: 'UTC', metrics: [] });
      return;
    }
    // From an immediate plan change within the period, under the plan in force until its end, as the usage endpoint
    // and the period's invoice count (a change in the grace window after it does not cut it: openStretchOf).
    const stretch = await openStretchOf(db, subscription.id, { start, end });
    const plan = await findPlan(db, stretch.planId ?? subscription.plan_id);
    const asOf = now();
    // Days that have not begun are not listed; an ended period is listed to its end.
    const until = new Date(Math.max(start.getTime(), Math.min(end.getTime(), asOf.getTime())));
    const usageFrom = stretch.from;
    const metrics = await dailyUsageForCharges(db, subscription.customer_id, plan.charges as Charge[], start, until, end, usageFrom); // from the running totals
    res.json({
      subscription_id: subscription.id,
      period: { start: start.toISOString(), end: end.toISOString() },
      as_of: asOf.toISOString(),
      timezone: 'UTC',
      metrics: metrics.map((metric) => ({
        metric_code: metric.metricCode,
        name: metric.name,
        aggregation: metric.aggregation,
        days: metric.days.map((day) => ({ date: day.date, quantity: day.quantity, event_count: day.eventCount })),
      })),
    });
  });

  routes.get('/:id/invoices', { allow: ['app', 'finance', 'customer_usage'], customerScope: ownSubscription(db) }, async (req, res) => {
    const query = subscriptionInvoicesQuery.parse(req.query);
    const startingAfter = invoiceCursorId(query.starting_after); // a bad cursor is refused before the numbering below writes
    const subscription = await findSubscription(req.params.id);
    // Credit notes are listed beside the invoices they credit. A finalized invoice still waiting for its number (its
    // finalizer crashed before numbering) is numbered first, else this list left it out (drafts are not listed).
    await numberInvoicesAwaitingNumber(db);
    const page = await listSubscriptionInvoices(db, subscription.id, query.limit, startingAfter);
    if (page.foreignCursor) throw foreignInvoiceCursor();
    const rows = page.rows;
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      data: rows.map((row) => ({ ...invoiceJson(row), ...(row.kind === CREDIT_NOTE_KIND ? { credited_invoice_id: row.credited_invoice_id } : {}) })),
      has_more: page.hasMore,
      next_cursor: rows.length ? encodeInvoiceCursor(rows[rows.length - 1].id) : null,
    });
  });

  return routes.router;
}
