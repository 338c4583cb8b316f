/**
 * The webhook signature (docs/payments.md): header `Meterloop-Signature: t=<unix seconds>,v1=<hex>` where
 * v1 = hex(HMAC-SHA256(key = the endpoint secret as UTF-8, message = "<t>.<raw body>")).
 * Hand-written on purpose: it is a few lines, and the format is ours to keep stable for receivers.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const WEBHOOK_SIGNATURE_HEADER = 'Meterloop-Signature';
export const WEBHOOK_SIGNATURE_VERSION = 'v1';
/** How far a signature's timestamp may be from the receiver's clock by default: 5 minutes (replay window). */
export const DEFAULT_SIGNATURE_TOLERANCE_SECONDS = 300;

// The secret is created where the endpoint row is written; offered here too, beside the code that uses it.
export { generateWebhookSecret } from '../store/notifications';

/** hex(HMAC-SHA256(secret, "<timestamp>.<body>")): the v1 signature. The body is the raw bytes as sent. */
export function computeWebhookSignature(secret: string, timestampSeconds: number, body: string | Buffer): string {
  return createHmac('sha256', secret).update(`${timestampSeconds}.`).update(body).digest('hex');
}

/** The header value for a body: `t=<unix seconds>,v1=<hex signature>`. */
export function signWebhookPayload(secret: string, body: string | Buffer, timestampSeconds = Math.floor(Date.now() / 1000)): string {
  return `t=${timestampSeconds},${WEBHOOK_SIGNATURE_VERSION}=${computeWebhookSignature(secret, timestampSeconds, body)}`;
}

/**
 * For receivers: true when `header` (the Meterloop-Signature value) signs exactly `body` (the raw request body,
 * before any JSON parsing) with `secret`, and its timestamp is within `toleranceSeconds` of now. Accepts several
 * v1 entries (we send one per active secret during a rotation). Compares in constant time.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined | null,
  body: string | Buffer,
  toleranceSeconds = DEFAULT_SIGNATURE_TOLERANCE_SECONDS,
  nowSeconds = Math.floor(Date.now() / 1000),
): boolean {
  if (!header || !secret) return false;
  let timestamp: number | null = null;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const separator = part.indexOf('=');
    if (separator < 0) continue;
    const key = part.slice(0, separator).trim();
    const value = part.slice(separator + 1).trim();
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === WEBHOOK_SIGNATURE_VERSION && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (timestamp === null || signatures.length === 0) return false;
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(computeWebhookSignature(secret, timestamp, body), 'hex');
  return signatures.some((signature) => timingSafeEqual(Buffer.from(signature, 'hex'), expected));
}
