/**
 * Progressive billing, as properties (fast-check, fixed seed so a failure reproduces with its printed path): over
 * random plans (per_unit and graduated charges, credit bucket, minimum commitment, flat fee), thresholds (a list or
 * every N) and usage arriving in batches, some of it late (after the last threshold check):
 *
 * - threshold invoices plus the period invoice equal the invoice without thresholds, to the minor unit;
 * - each threshold is invoiced at most once, each threshold invoice bills something, and each one's total is what
 *   accrued minus what the earlier ones billed.
 */
import fc from 'fast-check';
import { invoiceTotal, renewalInvoiceLines } from '../../domain/invoice';
import { Dec, minorUnitExponent, sumMoney, toDecimal } from '../../domain/money';
import {
  accruedAmount,
  accruedUsageLines,
  BilledThreshold,
  decideThresholdInvoice,
  thresholdCreditLines,
  thresholdInvoiceLines,
  UsageThresholds,
} from '../../domain/progressive-billing';
import type { Charge } from '../../domain/rating';

const RUNS = { numRuns: 300, seed: 20261205 };
const PERIOD = { start: '2031-03-01T00:00:00.000Z', end: '2031-04-01T00:00:00.000Z' };

const money = (minorUnits: number, currency: string): string => new Dec(minorUnits).div(new Dec(10).pow(minorUnitExponent(currency))).toFixed(minorUnitExponent(currency));
const decimal = (scaled: number, scale: number): string => new Dec(scaled).div(new Dec(10).pow(scale)).toFixed(scale);

const currencyArb = fc.constantFrom('USD', 'JPY', 'KWD');

const chargesArb: fc.Arbitrary<Charge[]> = fc.tuple(
  fc.integer({ min: 1, max: 50_000 }).map((scaled) => decimal(scaled, 4)),
  fc.option(
    fc.tuple(fc.integer({ min: 1, max: 500 }), fc.integer({ min: 1, max: 20_000 }), fc.integer({ min: 1, max: 20_000 })),
    { nil: undefined },
  ),
).map(([unitPrice, graduated]) => [
  { metricCode: 'calls', price: { model: 'per_unit', unitPrice } },
  ...(graduated
    ? [{ metricCode: 'tokens', price: { model: 'graduated' as const, tiers: [{ upTo: String(graduated[0]), unitPrice: decimal(graduated[1], 4) }, { upTo: null, unitPrice: decimal(graduated[2], 5) }] } }]
    : []),
] as Charge[]);

const thresholdsArb = (currency: string): fc.Arbitrary<UsageThresholds> =>
  fc.oneof(
    fc.uniqueArray(fc.integer({ min: 1, max: 200_000 }), { minLength: 1, maxLength: 6 }).map((minor) => ({ amounts: [...minor].sort((a, b) => a - b).map((m) => money(m, currency)) })),
    fc.integer({ min: 1, max: 100_000 }).map((minor) => ({ every: money(minor, currency) })),
  );

/** Usage batches: quantities (3 decimals) per metric; the last `late` of them arrive after the last threshold check. */
const batchesArb = fc.array(fc.tuple(fc.integer({ min: 0, max: 400_000 }), fc.integer({ min: 0, max: 2_000_000 })), { minLength: 1, maxLength: 10 });

const scenarioArb = currencyArb.chain((currency) =>
  fc.record({
    currency: fc.constant(currency),
    charges: chargesArb,
    thresholds: thresholdsArb(currency),
    batches: batchesArb,
    late: fc.integer({ min: 0, max: 3 }),
    flatFee: fc.integer({ min: 0, max: 10_000 }).map((minor) => money(minor, currency)),
    creditBucket: fc.option(fc.integer({ min: 1, max: 50_000 }).map((minor) => money(minor, currency)), { nil: undefined }),
    minimumCommitment: fc.option(fc.integer({ min: 1, max: 200_000 }).map((minor) => money(minor, currency)), { nil: undefined }),
  }),
);

test('threshold invoices plus the period invoice equal the invoice without thresholds, to the minor unit', () => {
  fc.assert(
    fc.property(scenarioArb, (scenario) => {
      const { currency, charges } = scenario;
      const usageOf = (calls: number, tokens: number) => [
        { metricCode: 'calls', quantity: decimal(calls, 3) },
        { metricCode: 'tokens', quantity: decimal(tokens, 3) },
      ];
      const billed: BilledThreshold[] = [];
      let calls = 0;
      let tokens = 0;
      const checked = Math.max(0, scenario.batches.length - scenario.late);
      scenario.batches.forEach(([batchCalls, batchTokens], index) => {
        calls += batchCalls;
        tokens += batchTokens;
        if (index >= checked) return; // late: arrives after the last threshold check, before the period closes
        const period = { start: PERIOD.start, end: `2031-03-${String(index + 2).padStart(2, '0')}T00:00:00.000Z` };
        const accrued = accruedUsageLines({ planName: 'P', currency, charges, period, usage: usageOf(calls, tokens), creditBucket: scenario.creditBucket });
        const decision = decideThresholdInvoice({ thresholds: scenario.thresholds, currency, accrued: accruedAmount(accrued, currency), earlier: billed });
        if (!decision) return;
        const total = invoiceTotal(thresholdInvoiceLines({ accrued, earlier: billed, currency, period }), currency);
        expect(total).toBe(decision.amount);
        expect(toDecimal(total).gt(0)).toBe(true);
        expect(billed.every((earlier) => earlier.thresholdIndex < decision.thresholdIndex)).toBe(true);
        billed.push({ invoiceId: `i${index}`, number: `INV-${index}`, thresholdIndex: decision.thresholdIndex, total });
      });

      const withoutThresholds = renewalInvoiceLines({
        planName: 'P',
        currency,
        flatFee: scenario.flatFee,
        charges,
        flatFeePeriod: PERIOD,
        usage: { period: PERIOD, totals: usageOf(calls, tokens) },
        creditBucket: scenario.creditBucket,
        minimumCommitment: scenario.minimumCommitment,
      });
      const periodInvoice = [...withoutThresholds, ...thresholdCreditLines(billed, currency, PERIOD)];
      const progressive = sumMoney([...billed.map((invoice) => toDecimal(invoice.total)), toDecimal(invoiceTotal(periodInvoice, currency))]);
      expect(progressive.toFixed(minorUnitExponent(currency))).toBe(invoiceTotal(withoutThresholds, currency));
    }),
    RUNS,
  );
});
