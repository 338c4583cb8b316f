/**
 * Threshold crossings of the available balance (domain/wallet-recharge.ts): each fires once per crossing and
 * re-arms only when the balance is back at or above its threshold.
 */
import { INITIAL_WATCH, observeThresholds, ThresholdSettings, ThresholdWatch } from '../../domain/wallet-recharge';

const settings: ThresholdSettings = { rechargeThreshold: '10.00', rechargeAmount: '20.00', lowBalanceThreshold: '5.00' };

/** Observes a sequence of balances, returning what fired at each step. */
function walk(balances: readonly string[], with_: ThresholdSettings = settings): string[][] {
  let watch: ThresholdWatch = INITIAL_WATCH;
  return balances.map((balance) => {
    const decision = observeThresholds(balance, with_, watch);
    watch = decision.watch;
    return decision.crossed.map((crossing) => `${crossing.kind}#${crossing.number}`);
  });
}

test('a new wallet below its recharge threshold buys at once; the webhooks wait until the balance was seen above them', () => {
  expect(walk(['0.00'])).toEqual([['recharge#1']]);
});

test('falling below fires once; staying below fires nothing; back above re-arms; falling again is the next crossing', () => {
  expect(walk(['15.00', '9.99', '9.00', '4.00', '10.00', '3.00', '-0.01', '25.00', '0.00'])).toEqual([
    [],
    ['recharge#1'],
    [],
    ['low_balance#1'],
    [],
    ['recharge#2', 'low_balance#2'],
    ['depleted#1'],
    [],
    ['recharge#3', 'low_balance#3', 'depleted#2'],
  ]);
});

test('exactly at the threshold is not below it; zero is depleted', () => {
  expect(walk(['20.00', '10.00', '5.00', '0.01', '0'])).toEqual([[], [], ['recharge#1'], ['low_balance#1'], ['depleted#1']]);
});

test('without a recharge amount (or a zero one) nothing is bought', () => {
  expect(walk(['20.00', '1.00'], { rechargeThreshold: '10.00', rechargeAmount: null, lowBalanceThreshold: null })).toEqual([[], []]);
  expect(walk(['20.00', '1.00'], { rechargeThreshold: '10.00', rechargeAmount: '0', lowBalanceThreshold: null })).toEqual([[], []]);
});
