/**
 * The webhook signature, as documented in docs/payments.md:
 *   Meterloop-Signature: t=<unix seconds>,v1=<hex(HMAC-SHA256(secret, "<t>.<raw body>"))>
 */
import { createHmac } from 'node:crypto';
import { retryDelayMs } from '../../notifications/delivery-policy';
import {
  computeWebhookSignature,
  generateWebhookSecret,
  signWebhookPayload,
  verifyWebhookSignature,
} from '../../notifications/webhook-signature';

const secret = 'whsec_test_secret_0123456789abcdef';
const body = JSON.stringify({ id: 'evt_1', type: 'invoice.finalized', created_at: '2030-01-01T00:00:00.000Z', data: { total: '29.00' } });
const t = 1_900_000_000;

test('the signature is hex HMAC-SHA256 over "<timestamp>.<body>" keyed by the whole secret, computed independently', () => {
  const expected = createHmac('sha256', secret).update(`${t}.${body}`, 'utf8').digest('hex');
  expect(computeWebhookSignature(secret, t, body)).toBe(expected);
  expect(signWebhookPayload(secret, body, t)).toBe(`t=${t},v1=${expected}`);
});

test('a signed body verifies, as a string or as raw bytes', () => {
  const header = signWebhookPayload(secret, body, t);
  expect(verifyWebhookSignature(secret, header, body, 300, t + 10)).toBe(true);
  expect(verifyWebhookSignature(secret, header, Buffer.from(body, 'utf8'), 300, t + 10)).toBe(true);
});

test('a tampered body fails', () => {
  const header = signWebhookPayload(secret, body, t);
  expect(verifyWebhookSignature(secret, header, body.replace('29.00', '2900.00'), 300, t)).toBe(false);
  expect(verifyWebhookSignature(secret, header, `${body} `, 300, t)).toBe(false);
});

test('a wrong secret, a changed timestamp or a missing header fails', () => {
  const header = signWebhookPayload(secret, body, t);
  expect(verifyWebhookSignature(`${secret}x`, header, body, 300, t)).toBe(false);
  expect(verifyWebhookSignature(secret, header.replace(`t=${t}`, `t=${t + 1}`), body, 300, t)).toBe(false);
  expect(verifyWebhookSignature(secret, undefined, body, 300, t)).toBe(false);
  expect(verifyWebhookSignature(secret, 'garbage', body, 300, t)).toBe(false);
  expect(verifyWebhookSignature(secret, `t=${t}`, body, 300, t)).toBe(false);
});

test('a signature older (or newer) than the tolerance fails: replays are refused', () => {
  const header = signWebhookPayload(secret, body, t);
  expect(verifyWebhookSignature(secret, header, body, 300, t + 300)).toBe(true);
  expect(verifyWebhookSignature(secret, header, body, 300, t + 301)).toBe(false);
  expect(verifyWebhookSignature(secret, header, body, 300, t - 301)).toBe(false);
});

test('any one of several v1 signatures may match (secret rotation)', () => {
  const old = computeWebhookSignature('whsec_old_secret_xxxxxxxxxxxxxxxx', t, body);
  const current = computeWebhookSignature(secret, t, body);
  expect(verifyWebhookSignature(secret, `t=${t},v1=${old},v1=${current}`, body, 300, t)).toBe(true);
});

test('generated secrets are whsec_ plus 32 random bytes', () => {
  const a = generateWebhookSecret();
  expect(a).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
  expect(generateWebhookSecret()).not.toBe(a);
});

test('retries back off exponentially up to the cap, with bounded jitter', () => {
  const policy = { initialBackoffMs: 1000, maxBackoffMs: 10_000, maxAttempts: 10, jitter: 0 };
  expect([1, 2, 3, 4, 5, 6].map((attempt) => retryDelayMs(attempt, policy))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
  const jittered = { ...policy, jitter: 0.1 };
  expect(retryDelayMs(3, jittered, () => 0)).toBe(3600);
  expect(retryDelayMs(3, jittered, () => 1)).toBe(4400);
});
