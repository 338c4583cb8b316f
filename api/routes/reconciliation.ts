import type { Router } from 'express';
import { z } from 'zod';
import { FINDING_KINDS } from '../../contract/janitor';
import type { Database } from '../../store/database';
import { FindingRow, listFindings } from '../../store/janitor';
import { declareRoutes } from '../route-declarations';
import { pageLimit } from '../schemas';

export const findingsQuery = z.strictObject({
  status: z.enum(['open', 'resolved', 'all']).default('open'),
  kind: z.enum(FINDING_KINDS).optional(),
  limit: pageLimit(1000, 100),
});

function findingJson(row: FindingRow) {
  return {
    id: row.id,
    kind: row.kind,
    subject: { type: row.subject_type, id: row.subject_id },
    detail: row.detail,
    repaired: row.repaired,
    status: row.resolved_at ? 'resolved' : 'open',
    first_seen: row.first_seen.toISOString(),
    last_seen: row.last_seen.toISOString(),
    resolved_at: row.resolved_at?.toISOString() ?? null,
  };
}

/** What the janitor found (docs/operations.md, "Janitor"): finance acts on it, monitoring watches it. */
export function reconciliationRouter(db: Database): Router {
  const routes = declareRoutes();

  routes.get('/findings', { allow: ['finance', 'monitoring'] }, async (req, res) => {
    const query = findingsQuery.parse(req.query);
    const rows = await listFindings(db, { status: query.status, kind: query.kind, limit: query.limit + 1 });
    res.json({ data: rows.slice(0, query.limit).map(findingJson), has_more: rows.length > query.limit });
  });

  return routes.router;
}
