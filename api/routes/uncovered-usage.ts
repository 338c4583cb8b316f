/**
 * GET /v1/customers/:id/uncovered-usage (docs/usage-events.md, "Uncovered usage"): the customer's accepted events
 * that no subscription of theirs prices, each with its reason, so usage that nothing will bill is visibly pending
 * instead of silently lost. Events a close or a re-rating will still bill (the open period, late usage) are not here.
 */
import type { Router } from 'express';
import { findCustomer } from '../../store/customers';
import type { Database } from '../../store/database';
import { listUncoveredUsage } from '../../store/uncovered-usage';
import { ApiProblem } from '../problem';
import { declareRoutes } from '../route-declarations';
import { foreignInvoiceCursor } from './invoices';
import { uncoveredUsageQuery, uuidParam } from '../schemas';

/** Mounted at /v1/customers. */
export function uncoveredUsageRouter(db: Database): Router {
  const routes = declareRoutes();

  routes.get('/:id/uncovered-usage', { allow: ['app', 'finance'] }, async (req, res) => {
    const query = uncoveredUsageQuery.parse(req.query);
    const id = uuidParam.safeParse(req.params.id);
    const customer = id.success ? await findCustomer(db, id.data) : undefined;
    if (!customer) throw new ApiProblem('customer_not_found', `no customer ${req.params.id}`);
    const page = await listUncoveredUsage(db, customer.id, query.limit, query.starting_after);
    if (page.foreignCursor) throw foreignInvoiceCursor(); // a cursor naming no event of this customer
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      data: page.rows.map((event) => ({
        id: event.event_id,
        type: event.event_type,
        timestamp: event.occurred_at.toISOString(),
        received_at: event.received_at.toISOString(),
        properties: event.properties,
        reason: event.reason,
      })),
      totals: page.totals.map((total) => ({ type: total.event_type, events: total.events, earliest: total.earliest.toISOString(), latest: total.latest.toISOString() })),
      has_more: page.hasMore,
      next_cursor: page.rows.length ? page.rows[page.rows.length - 1].id : null,
    });
  });

  return routes.router;
}
