import { validatePriceModel, type PriceModel } from '../../domain/price-models';
import { validateCharge } from '../../domain/rating';

const validate = (price: unknown): string[] => validatePriceModel(price as PriceModel);

describe('validatePriceModel', () => {
  it.each<[string, PriceModel]>([
    ['flat', { model: 'flat', amount: '49.00' }],
    ['per_unit', { model: 'per_unit', unitPrice: '0.0004' }],
    ['graduated', { model: 'graduated', tiers: [{ upTo: '10', unitPrice: '0', flatFee: '0' }, { upTo: null, unitPrice: '1' }] }],
    ['volume (single open tier)', { model: 'volume', tiers: [{ upTo: null, unitPrice: '1' }] }],
    ['package', { model: 'package', packageSize: '1000', packagePrice: '5' }],
    ['percentage', { model: 'percentage', rate: '0.025', minFee: '0.50', maxFee: '0.50', fixedFeePerEvent: '0.30' }],
    ['percentage at 100 %', { model: 'percentage', rate: '1' }],
  ])('accepts a valid %s price', (_name, price) => {
    expect(validatePriceModel(price)).toEqual([]);
  });

  it('requires tiers to ascend and end open-ended', () => {
    expect(
      validate({
        model: 'graduated',
        tiers: [
          { upTo: '100', unitPrice: '1' },
          { upTo: '100', unitPrice: '0.5' },
          { upTo: null, unitPrice: '0.2' },
          { upTo: '500', unitPrice: '0.1' },
        ],
      }),
    ).toEqual([
      'tiers[1].upTo must be greater than tiers[0].upTo (tiers ascend)',
      'tiers[2].upTo may be null only on the last tier',
      'tiers[3].upTo must be null: the last tier is open-ended',
    ]);
  });

  it('refuses empty tier lists, zero bounds and negative tier prices', () => {
    expect(validate({ model: 'volume', tiers: [] })).toEqual(['tiers must be a non-empty list']);
    expect(
      validate({
        model: 'volume',
        tiers: [
          { upTo: '0', unitPrice: '1' },
          { upTo: null, unitPrice: '-1', flatFee: '-2' },
        ],
      }),
    ).toEqual(['tiers[0].upTo must be greater than 0', 'tiers[1].unitPrice must not be negative', 'tiers[1].flatFee must not be negative']);
  });

  it('refuses a package size that is not positive', () => {
    expect(validate({ model: 'package', packageSize: '0', packagePrice: '5' })).toEqual(['packageSize must be greater than 0']);
  });

  it('refuses rates outside [0, 1] and min above max', () => {
    expect(validate({ model: 'percentage', rate: '2.5' })).toEqual([
      'rate must be between 0 and 1 (a fraction: "0.025" is 2.5 %)',
    ]);
    expect(validate({ model: 'percentage', rate: '0.1', minFee: '5', maxFee: '1' })).toEqual([
      'minFee must not be greater than maxFee',
    ]);
  });

  it('refuses numbers where decimal strings belong (floats never become money)', () => {
    expect(validate({ model: 'per_unit', unitPrice: 0.1 })).toEqual(['unitPrice must be a decimal string']);
  });

  it('refuses unknown models and non-objects', () => {
    expect(validate({ model: 'tiered' })).toEqual(['unknown price model: "tiered"']);
    expect(validate(null)).toEqual(['price must be an object']);
  });
});

describe('validateCharge', () => {
  it('accepts included units on quantity models', () => {
    expect(validateCharge({ metricCode: 'api', price: { model: 'per_unit', unitPrice: '1' }, includedUnits: '1000' })).toEqual([]);
  });

  it('refuses included units where they mean nothing', () => {
    expect(validateCharge({ metricCode: 'r', price: { model: 'percentage', rate: '0.1' }, includedUnits: '1' })).toEqual([
      'includedUnits does not apply to percentage pricing',
    ]);
  });

  it('prefixes price problems and requires a metric code', () => {
    expect(validateCharge({ metricCode: '', price: { model: 'package', packageSize: '-1', packagePrice: '5' } })).toEqual([
      'metricCode is required',
      'price.packageSize must be greater than 0',
    ]);
  });
});
