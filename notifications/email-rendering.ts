/**
 * The text of each customer email, rendered once at fan-out (so a retried send sends the same words).
 * Known event types get their own wording; any other type gets a generic message listing its fields.
 */
import { formatMoney, isDecimalString, isSupportedCurrency, toDecimal } from '../domain/money';
import type { EmailContext } from '../store/notifications';

const DECLINE_REASONS: Readonly<Record<string, string>> = {
  insufficient_funds: 'the card was declined for insufficient funds',
  expired_card: 'the card has expired',
  payment_method_missing: 'there is no payment method on file',
  unknown_payment_method: 'the payment method on file was not recognised',
};

const STATUS_SUBJECTS: Readonly<Record<string, (plan: string) => [string, string]>> = {
  suspended: (plan) => [`Your ${plan} subscription is suspended`, `We could not collect payment for your ${plan} subscription after several attempts, so it is suspended until the open invoice is paid.`],
  paused: (plan) => [`Your ${plan} subscription is paused`, `Your ${plan} subscription is paused; you are not billed while it is.`],
  retention_offered: (plan) => [`About cancelling ${plan}`, `We received your request to cancel ${plan}; we have sent you an offer to consider first.`],
  scheduled: (plan) => [`Your ${plan} subscription is scheduled`, `Your ${plan} subscription is scheduled and will start on its start date.`],
  trialing: (plan) => [`Your ${plan} trial has started`, `Your free trial of ${plan} has started. We will not charge you before it ends.`],
  active: (plan) => [`Your ${plan} subscription is active`, `Your ${plan} subscription is active.`],
  past_due: (plan) => [`Your ${plan} subscription is past due`, `We could not collect the latest payment for your ${plan} subscription, so it is past due.`],
  pending_cancellation: (plan) => [`Your ${plan} subscription will end`, `Your ${plan} subscription is set to end at the close of the current billing period.`],
  canceled: (plan) => [`Your ${plan} subscription has ended`, `Your ${plan} subscription has been canceled.`],
};

const str = (value: unknown): string | null => (typeof value === 'string' && value.length > 0 ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : null);

function formatDate(value: unknown): string | null {
  const text = value instanceof Date ? value.toISOString() : str(value);
  if (!text) return null;
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return text;
  return date.toLocaleDateString('en-GB', { timeZone: 'UTC', day: 'numeric', month: 'long', year: 'numeric' });
}

function money(amount: unknown, currency: unknown): string | null {
  const value = str(amount);
  const code = str(currency);
  if (!value || !code) return null;
  return isDecimalString(value) && isSupportedCurrency(code) ? `${formatMoney(toDecimal(value), code)} ${code}` : `${value} ${code}`;
}

function humanize(eventType: string): string {
  return eventType.replace(/[._]/g, ' ');
}

export interface RenderedEmail {
  readonly subject: string;
  readonly text: string;
}

/**
 * Plain, readable text per event type. Known types get their own wording; any other type (events the
 * workflow adds later) gets a generic message listing the event's fields, so nothing is ever dropped.
 */
export function renderEmail(eventType: string, payload: Record<string, unknown>, context: EmailContext, brand = 'Meterloop'): RenderedEmail {
  const invoiceNumber = str(payload.invoiceNumber) ?? context.invoice?.number ?? null;
  const invoiceLabel = invoiceNumber ? `invoice ${invoiceNumber}` : 'your invoice';
  const amount =
    money(payload.amount, payload.currency) ??
    (context.invoice ? money(context.invoice.total, context.invoice.currency) : null) ??
    'the amount due';
  const plan = str(payload.planName) ?? context.planName ?? 'billing';
  const reason = str(payload.reason);
  let subject: string;
  let lines: string[];

  switch (eventType) {
    case 'invoice.finalized': {
      const total = money(payload.total, payload.currency) ?? amount;
      subject = `${invoiceNumber ? `Invoice ${invoiceNumber}` : 'Your invoice'} for ${total}`;
      lines = [`Your ${invoiceLabel} is ready.`, '', `  Amount due:  ${total}`];
      if (context.invoice) lines.push(`  Period:      ${formatDate(context.invoice.periodStart)} - ${formatDate(context.invoice.periodEnd)}`);
      lines.push('', 'We will charge your payment method on file; there is nothing you need to do.');
      break;
    }
    case 'payment.succeeded':
      subject = `Payment received for ${invoiceLabel}`;
      lines = [`We received your payment of ${amount} for ${invoiceLabel}. Thank you.`];
      break;
    case 'payment.failed': {
      const code = str(payload.declineCode) ?? 'declined';
      const why = DECLINE_REASONS[code] ?? `the payment was declined (${code})`;
      subject = `Payment failed for ${invoiceLabel}`;
      lines = [`We could not collect ${amount} for ${invoiceLabel}: ${why}.`, ''];
      lines.push(
        payload.retryable === false
          ? 'Please add a new payment method; this one cannot be charged again.'
          : 'We will try again automatically. To settle it sooner, update your payment method and we will retry at once.',
      );
      break;
    }
    case 'dunning.retry_scheduled': {
      const next = formatDate(payload.at ?? payload.nextAttemptAt);
      subject = `Reminder: ${invoiceLabel} is still unpaid`;
      lines = [`${amount} for ${invoiceLabel} is still unpaid.`];
      if (next) lines.push('', `We will try your payment method again on ${next}.`);
      lines.push('', 'Updating your payment method makes us retry at once.');
      break;
    }
    case 'invoice.uncollectible':
      subject = `We could not collect ${invoiceLabel}`;
      lines = [`After several attempts we could not collect ${amount} for ${invoiceLabel}.`];
      if (reason) lines.push('', `Reason: ${reason}`);
      lines.push('', 'Please contact us to settle it.');
      break;
    case 'credit_note.issued': {
      const creditNote = str(payload.creditNoteNumber);
      subject = `${creditNote ? `Credit note ${creditNote}` : 'A credit note'} for ${invoiceLabel}`;
      lines = [`We issued ${creditNote ? `credit note ${creditNote}` : 'a credit note'} of ${amount} for ${invoiceLabel}.`];
      if (reason) lines.push('', `Reason: ${reason}`);
      lines.push('', 'The amount is refunded to the payment method you paid with.');
      break;
    }
    case 'refund.succeeded':
      subject = `Refund of ${amount} on its way`;
      lines = [`We refunded ${amount} for ${invoiceLabel} to the payment method you paid with.`, '', 'Depending on your bank, it appears within 5 to 10 business days.'];
      break;
    case 'refund.failed':
      subject = `Refund of ${amount} could not be sent`;
      // A refused refund is credited to the customer's wallet instead (store/credit-notes.ts `settleRefund`), except a
      // top-up's, whose purchased credit is given back.
      lines = [
        payload.creditedToWallet
          ? `We could not send the refund of ${amount} for ${invoiceLabel} to your payment method, so we added ${amount} to your account credit. It pays the usage on your next invoices.`
          : `We could not send the refund of ${amount} for ${invoiceLabel} to your payment method. The credit it was for stays on your account.`,
      ];
      break;
    case 'customer.payment_method_updated':
      subject = 'Your payment method was updated';
      lines = ['Your payment method on file was updated. Future payments, and any open ones, use the new method.'];
      break;
    case 'trial.ending': {
      const trialEnd = formatDate(payload.trialEnd);
      subject = `Your ${plan} trial ends${trialEnd ? ` on ${trialEnd}` : ' soon'}`;
      lines = [`Your free trial of ${plan} ends${trialEnd ? ` on ${trialEnd}` : ' soon'}. After that, your subscription continues and we charge your payment method on file.`];
      break;
    }
    case 'retention.offered':
    case 'win_back.offered': {
      const terms = (payload.terms ?? {}) as Record<string, unknown>;
      const percentOff = str(terms.percentOff);
      const periods = str(terms.periods);
      const expires = formatDate(payload.expiresAt);
      subject = eventType === 'retention.offered' ? 'An offer before you go' : `Come back to ${plan}`;
      lines = [eventType === 'retention.offered' ? `We are sorry to see you consider leaving ${plan}.` : `We would love to have you back on ${plan}.`];
      if (percentOff) lines.push('', `Our offer: ${percentOff}% off${periods ? ` your next ${periods} invoice${periods === '1' ? '' : 's'}` : ''}.`);
      if (expires) lines.push('', `The offer is open until ${expires}.`);
      break;
    }
    case 'subscription.plan_changed':
      subject = `Your subscription now uses ${plan}`;
      lines = [`Your subscription was changed to ${plan}${str(payload.effective) ? ` (${humanize(str(payload.effective)!)})` : ''}.`];
      break;
    case 'spending.threshold_reached': {
      const spend = money(payload.spend, payload.currency);
      const limit = money(payload.limit, payload.currency);
      subject = `Your ${plan} usage reached ${str(payload.threshold) ?? 'a'}${str(payload.threshold) ? '%' : ''} of your limit`;
      lines = [`Your spend this period is ${spend ?? 'above your alert threshold'}${limit ? `, against a limit of ${limit}` : ''}.`];
      break;
    }
    default: {
      const status = eventType.startsWith('subscription.') ? STATUS_SUBJECTS[eventType.slice('subscription.'.length)] : undefined;
      if (status) {
        const [statusSubject, statusLine] = status(plan);
        subject = statusSubject;
        lines = [statusLine];
        if (reason) lines.push('', `Reason: ${reason}`);
        if (eventType === 'subscription.past_due' || eventType === 'subscription.suspended') lines.push('', 'Updating your payment method makes us retry at once.');
        break;
      }
      // Any other event: say what happened and list its fields, readably.
      subject = `Update: ${humanize(eventType)}`;
      lines = [`There is an update on your account: ${humanize(eventType)}.`, ''];
      for (const [key, value] of Object.entries(payload)) {
        if (key === 'customerId' || value === null || value === undefined) continue;
        lines.push(`  ${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
      }
    }
  }
  const text = [`Hello ${context.customer.name},`, '', ...lines, '', `-- ${brand} billing`, ''].join('\n');
  return { subject, text };
}
