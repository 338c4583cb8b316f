/**
 * Thresholds on a wallet's available balance (issue 12 point 3, docs/wallets.md). Pure.
 *
 * Each threshold is armed until the balance crosses it; the crossing fires once (a recharge, a webhook) and
 * disarms it; only the balance back at or above the threshold re-arms it. So a balance that stays low fires
 * nothing more (no recharge loop after a decline), and a balance that goes up and down again fires again.
 *
 * - recharge: available < recharge threshold -> buy the recharge amount
 * - low balance: available < low-balance threshold -> `wallet.low_balance`
 * - depleted: available <= 0 -> `wallet.depleted`
 */
import { toDecimal } from './money';

export interface ThresholdWatch {
  readonly rechargeArmed: boolean;
  readonly rechargeCrossings: number;
  readonly lowBalanceArmed: boolean;
  readonly lowBalanceCrossings: number;
  readonly depletedArmed: boolean;
  readonly depletedCrossings: number;
}

export interface ThresholdSettings {
  readonly rechargeThreshold: string | null;
  readonly rechargeAmount: string | null;
  readonly lowBalanceThreshold: string | null;
}

export type Crossing = 'recharge' | 'low_balance' | 'depleted';

export interface ThresholdDecision {
  readonly watch: ThresholdWatch;
  /** The thresholds crossed by this observation, each with its crossing number (its identity). */
  readonly crossed: readonly { readonly kind: Crossing; readonly number: number }[];
}

/**
 * A new wallet's watch: auto-recharge is armed (a wallet configured below its threshold buys at once); the two
 * webhooks arm once the balance has been seen at or above their threshold, so an empty new wallet is not
 * reported as "depleted".
 */
export const INITIAL_WATCH: ThresholdWatch = {
  rechargeArmed: true,
  rechargeCrossings: 0,
  lowBalanceArmed: false,
  lowBalanceCrossings: 0,
  depletedArmed: false,
  depletedCrossings: 0,
};

/** Whether auto-recharge is configured: a threshold and a positive amount. */
export function rechargeConfigured(settings: ThresholdSettings): boolean {
  return settings.rechargeThreshold !== null && settings.rechargeAmount !== null && toDecimal(settings.rechargeAmount).gt(0);
}

/** One observation of the available balance against the thresholds. */
export function observeThresholds(available: string, settings: ThresholdSettings, watch: ThresholdWatch): ThresholdDecision {
  const balance = toDecimal(available);
  const crossed: { kind: Crossing; number: number }[] = [];
  const step = (kind: Crossing, configured: boolean, below: boolean, armed: boolean, crossings: number): { armed: boolean; crossings: number } => {
    if (!configured) return { armed: kind === 'recharge', crossings };
    if (!below) return { armed: true, crossings };
    if (!armed) return { armed: false, crossings };
    crossed.push({ kind, number: crossings + 1 });
    return { armed: false, crossings: crossings + 1 };
  };
  const recharge = step('recharge', rechargeConfigured(settings), rechargeConfigured(settings) && balance.lt(toDecimal(settings.rechargeThreshold!)), watch.rechargeArmed, watch.rechargeCrossings);
  const low = step('low_balance', settings.lowBalanceThreshold !== null, settings.lowBalanceThreshold !== null && balance.lt(toDecimal(settings.lowBalanceThreshold)), watch.lowBalanceArmed, watch.lowBalanceCrossings);
  const depleted = step('depleted', true, balance.lte(0), watch.depletedArmed, watch.depletedCrossings);
  return {
    watch: {
      rechargeArmed: recharge.armed,
      rechargeCrossings: recharge.crossings,
      lowBalanceArmed: low.armed,
      lowBalanceCrossings: low.crossings,
      depletedArmed: depleted.armed,
      depletedCrossings: depleted.crossings,
    },
    crossed,
  };
}
