/**
 * Progressive billing, worked by hand to the minor unit: thresholds crossed once, twice, by a late event, and
 * "every N" (with a jump over a threshold); each sequence ends with the period invoice, and the threshold invoices
 * plus the period invoice add up to the invoice without thresholds.
 */
import { DraftInvoiceLine, invoiceTotal, renewalInvoiceLines } from '../../domain/invoice';
import {
  accruedAmount,
  accruedUsageLines,
  BilledThreshold,
  decideThresholdInvoice,
  highestThresholdReached,
  thresholdAmount,
  thresholdCreditLines,
  thresholdInvoiceLines,
  UsageThresholds,
  validateUsageThresholds,
} from '../../domain/progressive-billing';
import type { Charge } from '../../domain/rating';

const PERIOD = { start: '2031-03-01T00:00:00.000Z', end: '2031-04-01T00:00:00.000Z' };

/** One billing period as the workflow sees it: threshold checks as usage accrues, then the period invoice. */
class Period {
  readonly billed: BilledThreshold[] = [];
  readonly invoices: { thresholdIndex: number; threshold: string; lines: DraftInvoiceLine[]; total: string }[] = [];

  constructor(
    private readonly thresholds: UsageThresholds,
    private readonly charges: Charge[],
    private readonly creditBucket?: string,
    private readonly flatFee = '0',
  ) {}

  /** A threshold check with the quantity counted so far; the new threshold invoice's total, or null. */
  check(quantity: string, at = '2031-03-15T00:00:00.000Z'): string | null {
    const period = { start: PERIOD.start, end: at };
    const accrued = accruedUsageLines({ planName: 'Plan', currency: 'USD', charges: this.charges, period, usage: [{ metricCode: 'calls', quantity }], creditBucket: this.creditBucket });
    const decision = decideThresholdInvoice({ thresholds: this.thresholds, currency: 'USD', accrued: accruedAmount(accrued, 'USD'), earlier: this.billed });
    if (!decision) return null;
    const lines = thresholdInvoiceLines({ accrued, earlier: this.billed, currency: 'USD', period });
    const total = invoiceTotal(lines, 'USD');
    expect(total).toBe(decision.amount);
    const number = `INV-00000${this.billed.length + 1}`;
    this.invoices.push({ thresholdIndex: decision.thresholdIndex, threshold: decision.threshold, lines, total });
    this.billed.push({ invoiceId: `id-${number}`, number, thresholdIndex: decision.thresholdIndex, total });
    return total;
  }

  /** The period invoice's lines with the period's closed quantity: without and with the threshold credits. */
  close(quantity: string): { withoutThresholds: string; periodInvoice: string; lines: DraftInvoiceLine[] } {
    const lines = renewalInvoiceLines({
      planName: 'Plan',
      currency: 'USD',
      flatFee: this.flatFee,
      charges: this.charges,
      flatFeePeriod: PERIOD,
      usage: { period: PERIOD, totals: [{ metricCode: 'calls', quantity }] },
      creditBucket: this.creditBucket,
    });
    const withCredits = [...lines, ...thresholdCreditLines(this.billed, 'USD', PERIOD)];
    return { withoutThresholds: invoiceTotal(lines, 'USD'), periodInvoice: invoiceTotal(withCredits, 'USD'), lines: withCredits };
  }
}

const callsAt = (unitPrice: string): Charge[] => [{ metricCode: 'calls', price: { model: 'per_unit', unitPrice } }];

describe('thresholds ["100.00", "500.00"], calls at 0.25, flat fee 20.00', () => {
  const thresholds = { amounts: ['100.00', '500.00'] };

  test('crossed once: 450 calls = 112.50 is invoiced; the period invoice bills the rest', () => {
    const period = new Period(thresholds, callsAt('0.25'), undefined, '20.00');
    expect(period.check('399')).toBeNull(); // 99.75: below 100.00
    expect(period.check('450')).toBe('112.50');
    expect(period.invoices[0]).toMatchObject({ thresholdIndex: 1, threshold: '100.00' });
    expect(period.check('460')).toBeNull(); // 115.00: threshold 1 is invoiced, 500.00 not reached
    // 1000 calls = 250.00; 20.00 + 250.00 - 112.50 = 157.50; without thresholds 270.00 = 112.50 + 157.50.
    const closed = period.close('1000');
    expect(closed.lines.map((line) => [line.kind, line.description, line.amount])).toEqual([
      ['flat_fee', 'Plan subscription fee', '20.00'],
      ['usage', expect.any(String), '250.00'],
      ['threshold_credit', 'Billed on threshold invoice INV-000001', '-112.50'],
    ]);
    expect(closed).toMatchObject({ withoutThresholds: '270.00', periodInvoice: '157.50' });
  });

  test('crossed twice: the second invoice bills what accrued minus the first', () => {
    const period = new Period(thresholds, callsAt('0.25'));
    expect(period.check('450')).toBe('112.50');
    // 2100 calls = 525.00 >= 500.00: 525.00 - 112.50 = 412.50.
    expect(period.check('2100')).toBe('412.50');
    expect(period.invoices[1].lines.map((line) => [line.kind, line.amount])).toEqual([
      ['usage', '525.00'],
      ['threshold_credit', '-112.50'],
    ]);
    expect(period.invoices[1]).toMatchObject({ thresholdIndex: 2, threshold: '500.00' });
    expect(period.check('3000')).toBeNull(); // past the last threshold: the period invoice bills the rest
    // 2400 calls = 600.00 - 112.50 - 412.50 = 75.00.
    expect(period.close('2400')).toMatchObject({ withoutThresholds: '600.00', periodInvoice: '75.00' });
  });

  test('crossed by a late event: counted at the next check, or on the period invoice after the period ended', () => {
    const period = new Period(thresholds, callsAt('0.25'));
    expect(period.check('450')).toBe('112.50');
    // 1700 calls stamped on Mar 3 arrive on Mar 20: 2150 calls = 537.50 crosses 500.00; 537.50 - 112.50 = 425.00.
    expect(period.check('2150', '2031-03-20T00:00:00.000Z')).toBe('425.00');
    // 150 more calls stamped Mar 31 arrive inside the grace window: the stretch is closing, no threshold invoice;
    // the period invoice bills them: 2300 calls = 575.00 - 112.50 - 425.00 = 37.50.
    expect(period.close('2300')).toMatchObject({ withoutThresholds: '575.00', periodInvoice: '37.50' });
  });

  test('to the cent: each invoice rounds its own lines, and the credits take back exactly what was billed', () => {
    const period = new Period(thresholds, callsAt('0.0015'));
    // 70001 calls = 105.0015 -> 105.00.
    expect(period.check('70001')).toBe('105.00');
    // 70005 calls = 105.0075 -> 105.01: the period invoice bills 0.01.
    expect(period.close('70005')).toMatchObject({ withoutThresholds: '105.01', periodInvoice: '0.01' });
  });
});

describe('every 250.00, calls at 0.10, 50.00 of usage included', () => {
  test('invoices at 250, jumps over 500 to 750 with one invoice, and never twice for one threshold', () => {
    const period = new Period({ every: '250.00' }, callsAt('0.10'), '50.00');
    expect(period.check('2400')).toBeNull(); // 240.00 - 50.00 included = 190.00
    expect(period.check('3100')).toBe('260.00'); // 310.00 - 50.00 = 260.00 >= 250.00
    // 8000 calls: 800.00 - 50.00 = 750.00 reaches threshold 3 (750.00), jumping over 500.00: one invoice, 490.00.
    expect(period.check('8000')).toBe('490.00');
    expect(period.invoices.map((invoice) => [invoice.thresholdIndex, invoice.threshold])).toEqual([
      [1, '250.00'],
      [3, '750.00'],
    ]);
    expect(period.check('8050')).toBeNull(); // 755.00: threshold 3 is invoiced, 1000.00 not reached
    expect(period.check('8000')).toBeNull(); // a repeated signal: nothing to do
    // 9000 calls: 900.00 - 50.00 = 850.00; 850.00 - 260.00 - 490.00 = 100.00.
    expect(period.close('9000')).toMatchObject({ withoutThresholds: '850.00', periodInvoice: '100.00' });
  });
});

describe('thresholds', () => {
  test('a threshold is reached when the amount equals it', () => {
    expect(highestThresholdReached({ amounts: ['100.00', '500.00'] }, '99.99')).toBe(0);
    expect(highestThresholdReached({ amounts: ['100.00', '500.00'] }, '100.00')).toBe(1);
    expect(highestThresholdReached({ amounts: ['100.00', '500.00'] }, '10000')).toBe(2);
    expect(highestThresholdReached({ every: '250.00' }, '749.99')).toBe(2);
    expect(highestThresholdReached({ every: '250.00' }, '750.00')).toBe(3);
    expect(thresholdAmount({ every: '250.00' }, 4)?.toFixed(2)).toBe('1000.00');
    expect(thresholdAmount({ amounts: ['100.00'] }, 2)).toBeNull();
  });

  test('validation: positive, increasing, in the currency\'s minor unit, at most 20', () => {
    expect(validateUsageThresholds({ amounts: ['100.00', '500.00'] }, 'USD')).toEqual([]);
    expect(validateUsageThresholds({ every: '250' }, 'JPY')).toEqual([]);
    expect(validateUsageThresholds({ amounts: ['500.00', '100.00'] }, 'USD')).toEqual(['amounts.1: thresholds must increase']);
    expect(validateUsageThresholds({ amounts: ['100.00', '100.00'] }, 'USD')).toEqual(['amounts.1: thresholds must increase']);
    expect(validateUsageThresholds({ amounts: ['0'] }, 'USD')).toEqual(['amounts.0: a threshold must be positive']);
    expect(validateUsageThresholds({ every: '-5' }, 'USD')).toEqual(['every: a threshold must be positive']);
    expect(validateUsageThresholds({ every: '2.5' }, 'JPY')).toEqual(['every: 2.5 has more decimals than JPY allows']);
    expect(validateUsageThresholds({ amounts: [] }, 'USD')).toEqual(['amounts: at least one threshold']);
    expect(validateUsageThresholds({ amounts: Array.from({ length: 21 }, (_, i) => String(i + 1)) }, 'USD')).toEqual(['amounts: at most 20 thresholds']);
  });
});
