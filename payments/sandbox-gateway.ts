/**
 * The sandbox payment gateway: a product feature for demos and tests, with deterministic test payment
 * methods. It keeps its own ledger in Postgres (`sandbox_gateway_charges`) so tests can count real charges.
 *
 * Test payment methods:
 *   pm_sandbox_ok             always succeeds
 *   pm_sandbox_declined       always declines: insufficient_funds (retryable later)
 *   pm_sandbox_expired        always declines: expired_card (not retryable with this method)
 */
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { ChargeRequest, ChargeResult, PaymentGateway } from './gateway';

interface TestCardBehaviour {
  readonly outcome: 'succeeded' | 'declined';
  readonly declineCode?: string;
  readonly retryable?: boolean;
}

export const SANDBOX_TEST_CARDS: Readonly<Record<string, TestCardBehaviour>> = {
  pm_sandbox_ok: { outcome: 'succeeded' },
  pm_sandbox_declined: { outcome: 'declined', declineCode: 'insufficient_funds', retryable: true },
  pm_sandbox_expired: { outcome: 'declined', declineCode: 'expired_card', retryable: false },
};

interface LedgerRow {
  id: string;
  status: 'succeeded' | 'declined';
  decline_code: string | null;
}

const NON_RETRYABLE_CODES = new Set(['expired_card', 'unknown_payment_method']);

function toResult(row: LedgerRow): ChargeResult {
  if (row.status === 'succeeded') return { outcome: 'succeeded', chargeId: row.id };
  const declineCode = row.decline_code ?? 'declined';
  return { outcome: 'declined', chargeId: row.id, declineCode, retryable: !NON_RETRYABLE_CODES.has(declineCode) };
}

export class SandboxGateway implements PaymentGateway {
  constructor(private readonly db: Knex) {}

  async charge(request: ChargeRequest): Promise<ChargeResult> {
    const behaviour = SANDBOX_TEST_CARDS[request.paymentMethod] ?? {
      outcome: 'declined',
      declineCode: 'unknown_payment_method',
    };
    // Like a real gateway, the idempotency key makes a repeated request return the first result.
    await this.db('sandbox_gateway_charges')
      .insert({
        id: `ch_${randomUUID()}`,
        idempotency_key: request.idempotencyKey,
        payment_method: request.paymentMethod,
        amount: request.amount.toString(),
        currency: request.currency,
        status: behaviour.outcome,
        decline_code: behaviour.declineCode ?? null,
      })
      .onConflict('idempotency_key')
      .ignore();
    const charge = await this.findCharge(request.idempotencyKey);
    if (!charge) throw new Error(`sandbox ledger lost the charge for ${request.idempotencyKey}`);
    return charge;
  }

  async findCharge(idempotencyKey: string): Promise<ChargeResult | null> {
    const row: LedgerRow | undefined = await this.db('sandbox_gateway_charges')
      .where({ idempotency_key: idempotencyKey })
      .first('id', 'status', 'decline_code');
    return row ? toResult(row) : null;
  }
}
