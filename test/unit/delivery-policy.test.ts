/**
 * The delivery policy's decisions beside the backoff (covered in webhook-signature.test.ts), and the dispatcher's
 * default log line, which keeps the JSON shape the console logger printed before the logger became injectable.
 */
import {
  attemptOutcome,
  claimLeaseMs,
  DEFAULT_EMAIL_RETRY,
  DEFAULT_WEBHOOK_RETRY,
  emailDeliveryPolicy,
  webhookDeliveryPolicy,
} from '../../notifications/delivery-policy';
import { jsonConsoleLogger } from '../../notifications/logger';

test('webhooks default to the documented policy with 10 s per request; a claim is leased for twice that plus 30 s', () => {
  const policy = webhookDeliveryPolicy();
  expect(policy).toEqual({ ...DEFAULT_WEBHOOK_RETRY, timeoutMs: 10_000 });
  expect(claimLeaseMs(policy)).toBe(50_000);
  expect(claimLeaseMs(webhookDeliveryPolicy({ timeoutMs: 1000 }))).toBe(32_000);
  expect(emailDeliveryPolicy({ maxAttempts: 2 })).toEqual({ ...DEFAULT_EMAIL_RETRY, maxAttempts: 2 });
});

test('a failed attempt is retried until the last one, and never when no retry can succeed', () => {
  const policy = { ...DEFAULT_WEBHOOK_RETRY, maxAttempts: 3 };
  expect(attemptOutcome(true, 3, policy)).toBe('delivered');
  expect(attemptOutcome(false, 1, policy)).toBe('retry');
  expect(attemptOutcome(false, 2, policy)).toBe('retry');
  expect(attemptOutcome(false, 3, policy)).toBe('failed');
  expect(attemptOutcome(false, 1, policy, false)).toBe('failed');
});

test('the default logger prints one JSON line: level, message, then the fields', () => {
  const lines: string[] = [];
  const spy = jest.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
  try {
    jsonConsoleLogger.warn({ deliveryId: '7', attempt: 2, retryInMs: undefined }, 'webhook delivery failed');
    jsonConsoleLogger.error({ error: 'boom' }, 'outbox dispatch pass failed');
  } finally {
    spy.mockRestore();
  }
  expect(lines).toEqual([
    '{"level":"warn","msg":"webhook delivery failed","deliveryId":"7","attempt":2}',
    '{"level":"error","msg":"outbox dispatch pass failed","error":"boom"}',
  ]);
});
