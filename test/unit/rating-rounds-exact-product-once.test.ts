/**
 * A usage line is the exact product of its price and its usage, rounded once, half up, to the minor unit. Prices and
 * values carry 12 decimals each, so a product has 24 decimals (36 for cost_plus: quantity × unit cost × (1 + markup)).
 * The Decimal math kept 40 significant digits and rounded there first: a product just below half a cent became exactly
 * half and the line billed a cent too much. Worked by hand in exact integer arithmetic:
 *
 *   cost_plus (from 10^4 on):
 *     24239.927895012009 × 6.861547948999 = 166323.427531903297756424528991
 *     166323.427531903297756424528991 × 1.123457697889 = 186857.334999999999999999999999999999999999 (42 digits)
 *     -> 186857.33 (it billed 186857.34, from 186857.335)
 *   per_unit (from 10^16 on, past what the fixed-point fast path takes):
 *     12345678.901234567891 × 1336672288.177322074789 = 16502126866015697.284999999999999999999999 (41 digits)
 *     -> 16502126866015697.28 (it billed ...697.29, from ...697.285)
 */
import { rateUsage } from '../../domain/rating';

const breakdownAmount = (line: { breakdown: unknown }): string => (line.breakdown as { amount: string }).amount;

test('a cost_plus line rounds the exact product once, not a 40-digit rounding of it', () => {
  const quantity = '24239.927895012009';
  const rated = rateUsage({
    currency: 'USD',
    charges: [{ metricCode: 'tokens', price: { model: 'cost_plus', markup: '0.123457697889' } }],
    usage: [{ metricCode: 'tokens', quantity, costs: [{ effectiveFrom: '2033-03-01T00:00:00.000Z', quantity, unitCost: '6.861547948999' }] }],
  });
  const [line] = rated.lines;
  expect([line.amount, rated.subtotal, (line.breakdown as { cost: string }).cost, breakdownAmount(line)]).toEqual([
    '186857.33',
    '186857.33',
    '166323.427531903297756424528991',
    '186857.334999999999999999999999999999999999',
  ]);
});

test('a per_unit line past 10^16 rounds the exact product once', () => {
  const rated = rateUsage({
    currency: 'USD',
    charges: [{ metricCode: 'calls', price: { model: 'per_unit', unitPrice: '12345678.901234567891' } }],
    usage: [{ metricCode: 'calls', quantity: '1336672288.177322074789' }],
  });
  const [line] = rated.lines;
  expect([line.amount, rated.subtotal, breakdownAmount(line)]).toEqual(['16502126866015697.28', '16502126866015697.28', '16502126866015697.284999999999999999999999']);
});
