/**
 * The sandbox payment gateway: a product feature for demos and tests, with deterministic test payment
 * methods. It keeps its own ledger in Postgres (`sandbox_gateway_charges`, `sandbox_gateway_refunds`) so tests
 * and demos can count the money that really moved. Documented for users in docs/payments.md.
 *
 * Test payment methods:
 *   pm_sandbox_ok                    always succeeds
 *   pm_sandbox_declined              always declines: insufficient_funds (retryable: a later try may pass)
 *   pm_sandbox_expired               always declines: expired_card (not retryable with this method)
 *   pm_sandbox_declines_<N>_then_ok  declines (insufficient_funds) the first N charges of an invoice, then
 *                                    succeeds. Counted per invoice (the charge's `reference`), from this ledger,
 *                                    so it is deterministic and survives restarts. N is 1 to 99.
 *   pm_sandbox_lost_response         commits a successful charge, then throws GatewayUnavailableError as if
 *                                    the response were lost on the way back, on every charge call. Only a
 *                                    lookup by idempotency key (findCharge) learns that the money moved.
 *   pm_sandbox_slow                  succeeds after a delay (2 s by default; `slowResponseMs`)
 *   pm_sandbox_refund_declined       charges succeed; every refund of a charge made with it is refused
 *                                    (`refund_declined`), as when the card was closed after paying. Decided
 *                                    from the charge's ledger row, so it is deterministic and survives restarts.
 * Any other token declines with unknown_payment_method (not retryable).
 */
import type { Database } from '../store/database';
import { toDecimal } from '../domain/money';
import { findSandboxCharge, recordSandboxCharge, recordSandboxRefund, sandboxChargePaymentMethod, SandboxChargeOutcome, SandboxChargeRow } from '../store/sandbox-ledger';
import {
  ChargeRequest,
  ChargeResult,
  GatewayUnavailableError,
  PaymentGateway,
  RefundRequest,
  RefundResult,
} from './gateway';

export type SandboxCardBehaviour =
  | { readonly kind: 'succeed' }
  | { readonly kind: 'decline'; readonly declineCode: string }
  | { readonly kind: 'decline_then_succeed'; readonly declines: number }
  | { readonly kind: 'lose_response' }
  | { readonly kind: 'slow' }
  | { readonly kind: 'refuse_refunds' };

export const SANDBOX_TEST_CARDS: Readonly<Record<string, SandboxCardBehaviour>> = {
  pm_sandbox_ok: { kind: 'succeed' },
  pm_sandbox_declined: { kind: 'decline', declineCode: 'insufficient_funds' },
  pm_sandbox_expired: { kind: 'decline', declineCode: 'expired_card' },
  pm_sandbox_lost_response: { kind: 'lose_response' },
  pm_sandbox_slow: { kind: 'slow' },
  pm_sandbox_refund_declined: { kind: 'refuse_refunds' },
};

/** The failure code of a refund the card refuses (`pm_sandbox_refund_declined`). */
export const SANDBOX_REFUND_DECLINED = 'refund_declined';

/** Postgres' unique_violation: a concurrent request wrote the same idempotency key first. */
const UNIQUE_VIOLATION = '23505';

const DECLINES_THEN_OK = /^pm_sandbox_declines_([1-9]\d?)_then_ok$/;

/** What a sandbox token does; `pm_sandbox_declines_<N>_then_ok` is a family, the rest are fixed names. */
export function sandboxCardBehaviour(paymentMethod: string): SandboxCardBehaviour {
  const fixed = SANDBOX_TEST_CARDS[paymentMethod];
  if (fixed) return fixed;
  const declines = DECLINES_THEN_OK.exec(paymentMethod);
  if (declines) return { kind: 'decline_then_succeed', declines: Number(declines[1]) };
  return { kind: 'decline', declineCode: 'unknown_payment_method' };
}

/** Decline codes that say "this payment method will never work": retrying it is pointless. */
const NON_RETRYABLE_DECLINES = new Set(['expired_card', 'unknown_payment_method']);

function toResult(row: SandboxChargeRow): ChargeResult {
  const amount = toDecimal(row.amount);
  if (row.status === 'succeeded') return { outcome: 'succeeded', chargeId: row.id, amount, currency: row.currency };
  const declineCode = row.decline_code ?? 'declined';
  return {
    outcome: 'declined',
    chargeId: row.id,
    amount,
    currency: row.currency,
    declineCode,
    retryable: !NON_RETRYABLE_DECLINES.has(declineCode),
  };
}

/** What a test card does to a new charge; `priorDeclines` counts this invoice's declines so far. */
async function decideCharge(behaviour: SandboxCardBehaviour, priorDeclines: () => Promise<number>): Promise<SandboxChargeOutcome> {
  if (behaviour.kind === 'decline') return { status: 'declined', declineCode: behaviour.declineCode };
  if (behaviour.kind === 'decline_then_succeed' && (await priorDeclines()) < behaviour.declines) {
    return { status: 'declined', declineCode: 'insufficient_funds' };
  }
  return { status: 'succeeded', declineCode: null };
}

export interface SandboxGatewayOptions {
  /** How long `pm_sandbox_slow` takes to answer; 2000 ms by default. */
  readonly slowResponseMs?: number;
  /** How the slow card waits; a real timer by default, tests pass one that records the wait instead. */
  readonly wait?: (ms: number) => Promise<void>;
}

export class SandboxGateway implements PaymentGateway {
  private readonly slowResponseMs: number;
  private readonly wait: (ms: number) => Promise<void>;

  constructor(
    private readonly db: Database,
    options: SandboxGatewayOptions = {},
  ) {
    this.slowResponseMs = options.slowResponseMs ?? 2000;
    this.wait = options.wait ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async charge(request: ChargeRequest): Promise<ChargeResult> {
    const behaviour = sandboxCardBehaviour(request.paymentMethod);
    if (behaviour.kind === 'slow') await this.wait(this.slowResponseMs);
    // Like a real gateway, the idempotency key makes a repeated request return the first result.
    const row = await recordSandboxCharge(
      this.db,
      { idempotencyKey: request.idempotencyKey, paymentMethod: request.paymentMethod, amount: request.amount.toString(), currency: request.currency, reference: request.reference },
      (priorDeclines) => decideCharge(behaviour, priorDeclines),
    );
    if (behaviour.kind === 'lose_response') {
      throw new GatewayUnavailableError(`sandbox: the response to charge ${request.idempotencyKey} was lost (timeout after commit)`);
    }
    return toResult(row);
  }

  async findCharge(idempotencyKey: string): Promise<ChargeResult | null> {
    const row = await findSandboxCharge(this.db, idempotencyKey);
    return row ? toResult(row) : null;
  }

  async refund(request: RefundRequest): Promise<RefundResult> {
    // The card that paid decides, as at a real gateway (a closed card refuses refunds): read from the charge's
    // ledger row, so a repeated request gets the same answer. A refused refund moves nothing and writes no row.
    const paidWith = await sandboxChargePaymentMethod(this.db, request.chargeId);
    if (paidWith && sandboxCardBehaviour(paidWith).kind === 'refuse_refunds') {
      return { outcome: 'failed', refundId: null, failureCode: SANDBOX_REFUND_DECLINED };
    }
    const attempt = {
      idempotencyKey: request.idempotencyKey,
      chargeId: request.chargeId,
      amount: request.amount.toString(),
      currency: request.currency,
      reason: request.reason,
    };
    let recorded = await recordSandboxRefund(this.db, attempt).catch((error: unknown) => {
      if ((error as { code?: string }).code === UNIQUE_VIOLATION) return undefined;
      throw error;
    });
    // Two requests under one key at once both pass the ledger's "refunded under this key?" check before either
    // writes; the later one then saw the earlier's refund as another (amount_exceeds_charge) or hit the key's unique
    // index, and a refund whose money went back could be recorded as refused. Asking again finds the key's refund:
    // a repeated key gets the first result, as the PaymentGateway contract says (a refusal writes no row, so a
    // genuine one is only decided again, the same way).
    if (!recorded || recorded.outcome === 'failed') recorded = await recordSandboxRefund(this.db, attempt);
    if (recorded.outcome === 'failed') return { outcome: 'failed', refundId: null, failureCode: recorded.failureCode };
    return { outcome: 'succeeded', refundId: recorded.refund.id };
  }
}
