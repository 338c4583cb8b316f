import { formatMoney, isDecimalString, roundMoney, sumMoney, toDecimal } from '../../domain/money';

describe('money', () => {
  it('rounds half-up to the currency minor unit (USD 2, JPY 0, KWD 3)', () => {
    expect(formatMoney(toDecimal('2.345'), 'USD')).toBe('2.35');
    expect(formatMoney(toDecimal('2.344999'), 'USD')).toBe('2.34');
    expect(formatMoney(toDecimal('-2.345'), 'USD')).toBe('-2.35'); // half away from zero
    expect(formatMoney(toDecimal('1250.5'), 'JPY')).toBe('1251');
    expect(formatMoney(toDecimal('0.0005'), 'KWD')).toBe('0.001');
    expect(formatMoney(toDecimal('7'), 'USD')).toBe('7.00');
  });

  it('is exact where floats are not', () => {
    expect(toDecimal('0.1').plus(toDecimal('0.2')).toString()).toBe('0.3');
    expect(formatMoney(toDecimal('1.005'), 'USD')).toBe('1.01'); // 1.005 as a float rounds to 1.00
  });

  it('a total of rounded lines equals the sum of what the lines show', () => {
    const lines = ['0.333', '0.333', '0.334'].map((amount) => roundMoney(toDecimal(amount), 'USD'));
    expect(formatMoney(sumMoney(lines), 'USD')).toBe('0.99');
  });

  it('accepts only plain decimal strings', () => {
    for (const good of ['0', '12.50', '-3', '0.000000000001']) expect(isDecimalString(good)).toBe(true);
    for (const bad of ['', '1e3', '1,5', ' 1', 'NaN', 'Infinity', '.5', '1.', '+1']) expect(isDecimalString(bad)).toBe(false);
    expect(() => toDecimal(12.5 as unknown as string)).toThrow(TypeError);
  });

  it('refuses unknown currencies instead of guessing', () => {
    expect(() => formatMoney(toDecimal('1'), 'XXX')).toThrow(/unsupported currency/);
  });
});
