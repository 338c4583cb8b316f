/**
 * The catalog every lifecycle-simulation scenario bills with: one event type read by two metrics (a sum of
 * tokens and a count of requests), and three monthly USD plans with different price models, so plan changes
 * move money in both directions. Kept in the domain's shape (what the reference model rates with) and turned
 * into API bodies here, in one place.
 */
import type { Charge } from '../../domain/rating';

export const SIM_EVENT_TYPE = 'sim.request';
export const SIM_CURRENCY = 'USD';
export const SIM_INTERVAL = 'P1M';
/** The plans' usage grace window (the default, written out so the generator and the model agree on it). */
export const SIM_GRACE = 'PT1H';
export const SIM_GRACE_MS = 3_600_000;

export interface SimPlan {
  readonly code: string;
  readonly name: string;
  readonly flatFee: string;
  readonly charges: readonly Charge[];
  readonly creditBucket?: string;
}

export const SIM_METRICS = [
  { code: 'sim_tokens', name: 'Simulated tokens', event_type: SIM_EVENT_TYPE, aggregation: 'sum', property: 'tokens' },
  { code: 'sim_requests', name: 'Simulated requests', event_type: SIM_EVENT_TYPE, aggregation: 'count' },
] as const;

export const SIM_PLANS: readonly SimPlan[] = [
  {
    code: 'sim-basic',
    name: 'Sim Basic',
    flatFee: '10.00',
    charges: [
      { metricCode: 'sim_tokens', price: { model: 'per_unit', unitPrice: '0.0001' } },
      { metricCode: 'sim_requests', price: { model: 'per_unit', unitPrice: '0.01' }, includedUnits: '3' },
    ],
  },
  {
    code: 'sim-pro',
    name: 'Sim Pro',
    flatFee: '49.00',
    creditBucket: '5.00',
    charges: [
      {
        metricCode: 'sim_tokens',
        price: { model: 'graduated', tiers: [{ upTo: '100000', unitPrice: '0.00005' }, { upTo: null, unitPrice: '0.00002', flatFee: '1.00' }] },
      },
      { metricCode: 'sim_requests', price: { model: 'package', packageSize: '10', packagePrice: '0.25' } },
    ],
  },
  {
    code: 'sim-metered',
    name: 'Sim Metered',
    flatFee: '0',
    charges: [
      { metricCode: 'sim_tokens', price: { model: 'volume', tiers: [{ upTo: '50000', unitPrice: '0.0003' }, { upTo: null, unitPrice: '0.00015' }] } },
      { metricCode: 'sim_requests', price: { model: 'per_unit', unitPrice: '0.002' } },
    ],
  },
];

export function simPlan(code: string): SimPlan {
  const plan = SIM_PLANS.find((candidate) => candidate.code === code);
  if (!plan) throw new Error(`no simulation plan ${code}`);
  return plan;
}

/** The POST /v1/plans body of a simulation plan. */
export function planBody(plan: SimPlan): Record<string, unknown> {
  return {
    code: plan.code,
    name: plan.name,
    currency: SIM_CURRENCY,
    billing_interval: SIM_INTERVAL,
    usage_grace_period: SIM_GRACE,
    flat_fee: plan.flatFee,
    ...(plan.creditBucket ? { credit_bucket: plan.creditBucket } : {}),
    charges: plan.charges.map((charge) => ({
      metric_code: charge.metricCode,
      price: charge.price,
      ...(charge.includedUnits ? { included_units: charge.includedUnits } : {}),
    })),
  };
}
