import { Router } from 'express';
import type { Database } from '../../store/database';
import type { PlanRow } from '../../store/subscriptions';
import { ApiProblem } from '../problem';
import { createPlanBody } from '../schemas';
import { planJson } from '../serializers';

const UNIQUE_VIOLATION = '23505';

export function plansRouter(db: Database): Router {
  const router = Router();

  /** Plans are immutable: posting an existing code publishes its next version; subscriptions keep theirs. */
  router.post('/', async (req, res) => {
    const body = createPlanBody.parse(req.body);
    try {
      const row = await db.transaction(async (trx) => {
        const latest = await trx<PlanRow>('plans').where({ code: body.code }).max<{ max: number | null }>('version as max').first();
        const [inserted] = await trx<PlanRow>('plans')
          .insert({
            code: body.code,
            version: (latest?.max ?? 0) + 1,
            name: body.name,
            currency: body.currency,
            billing_interval: body.billing_interval,
            trial_period: body.trial_period ?? null,
            flat_fee: body.flat_fee,
          })
          .returning('*');
        return inserted;
      });
      res.status(201).json(planJson(row));
    } catch (error) {
      if ((error as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new ApiProblem('plan_version_conflict', `plan ${body.code} was published concurrently; retry`);
      }
      throw error;
    }
  });

  router.get('/', async (_req, res) => {
    const rows = await db<PlanRow>('plans').orderBy([{ column: 'code' }, { column: 'version', order: 'desc' }]);
    res.json({ data: rows.map(planJson) });
  });

  router.get('/:code', async (req, res) => {
    const row = await db<PlanRow>('plans').where({ code: req.params.code }).orderBy('version', 'desc').first();
    if (!row) throw new ApiProblem('plan_not_found', `no plan ${req.params.code}`);
    res.json(planJson(row));
  });

  return router;
}
