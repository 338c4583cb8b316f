import type { Client } from '@temporalio/client';
import express, { Express } from 'express';
import type { Database } from '../store/database';
import { MetricCatalog } from '../store/catalog';
import { CustomerDirectory } from './customer-directory';
import { answerClientErrors, ApiProblem, problemHandler } from './problem';
import type { Server as HttpServer } from 'node:http';
import { eventsRouter } from './routes/events';
import { metricsRouter } from './routes/metrics';
import { reratesRouter } from './routes/rerates';
import { subscriptionLifecycleRouter } from './routes/subscription-lifecycle';
import { usageRouter } from './routes/usage';
import type { UsageSignalCoalescer } from './usage-signals';
import { customersRouter } from './routes/customers';
import { invoicesRouter } from './routes/invoices';
import { plansRouter } from './routes/plans';
import { subscriptionsRouter } from './routes/subscriptions';
import type { PaymentGateway } from '../payments/gateway';
import { SandboxGateway } from '../payments/sandbox-gateway';
import { retryDunningOnNewPaymentMethod } from './dunning-retry';
import { PaymentMethodHooks, paymentMethodsRouter } from './routes/payment-methods';
import { refundsRouter } from './routes/refunds';
import { webhookEndpointsRouter } from './routes/webhook-endpoints';
import { AccessControl } from './access';
import { ApiKeyAuthenticator } from './authentication';
import { assertEveryRouteDeclared, declareRoutes, PUBLIC } from './route-declarations';
import { idempotency, IdempotencyOptions } from './idempotency';
import { inspectParsedInput, requireJsonBodies, translateClientErrors } from './input-guard';
import { keepRawJson, markInexactJsonNumbers } from './exact-json-numbers';
import { createLogger, entryLogger, Logger, LogSink } from '../logging/logger';
import { ApiMetrics, captureErrors, healthHandlers, metricsHandler } from './observability';
import { observeRequests } from './request-log';
import { rateLimit, RateLimitOptions, rateLimitFromEnv, TokenBucketLimiter } from './rate-limit';
import { apiKeysRouter, usageTokensRouter } from './routes/api-keys';
import { reportsRouter } from './routes/reports';
import { reconciliationRouter } from './routes/reconciliation';
import { subscriptionUsageHistoryRouter, usageTokenRouter } from './routes/customer-usage';
import { invoiceDocumentsRouter } from './routes/invoice-documents';
import { usagePageRouter } from './routes/usage-page';
import { openApiRouter } from './openapi-router';
import { entitlementsRouter } from './routes/entitlements';
import { uncoveredUsageRouter } from './routes/uncovered-usage';
import { walletsRouter } from './routes/wallets';
import { walletTopUpsRouter } from './routes/wallet-top-ups';
import { wakeWalletWorkflow, WalletBalanceWatcher } from './wallet-signals';

export interface ApiDependencies {
  readonly db: Database;
  readonly temporal: Client;
  /** Coalesces usage into summary signals; the caller starts and stops it (see createUsageSignals). */
  readonly usageSignals?: UsageSignalCoalescer;
  /** Watches wallet balances after ingestion (auto-recharge, wallet webhooks); the caller starts and stops it. */
  readonly walletWatcher?: WalletBalanceWatcher;
  /** How long POST .../wallet/top-ups waits for the charge's outcome before answering 202 (10 s by default). */
  readonly topUpWaitMs?: number;
  /** The clock ingestion judges timestamps by; tests on a time-skipping server pass the server's time. */
  readonly now?: () => Date;
  /** The gateway refunds go through; the sandbox gateway (on the same database) when omitted. */
  readonly gateway?: PaymentGateway;
  /** Called after a customer's payment method changes (dunning retries at once); see routes/payment-methods.ts. */
  readonly onPaymentMethodUpdated?: PaymentMethodHooks['onPaymentMethodUpdated'];
  /** Where log lines go: a pino logger (JSON lines on stdout by default), or a function that gets each line as an object (tests). */
  readonly log?: Logger | LogSink;
  /** Per-API-key token bucket; from RATE_LIMIT_PER_SECOND / RATE_LIMIT_BURST by default; false turns it off. */
  readonly rateLimit?: RateLimitOptions | false;
  /** How long a verified API key is trusted without asking Postgres (default 5 s; revocations elsewhere wait this long). */
  readonly apiKeyCacheTtlMs?: number;
  /** The clock (epoch ms) API-key expiry and the rate limiter read; the real one by default, tests pass one they move. */
  readonly accessClock?: () => number;
  readonly idempotency?: Omit<IdempotencyOptions, 'log'>;
  /** True while the process shuts down: /readyz answers 503 (api/main.ts). */
  readonly draining?: () => boolean;
  /** Routers mounted after the API's own, behind the same middleware (benchmarks' bare baseline routes); declared with declareRoutes. */
  readonly extraRouters?: readonly { readonly path: string; readonly router: express.Router }[];
}

/**
 * The HTTP API: thin handlers that validate, call one store function or workflow, and respond.
 * Every request needs an API key of a role the route allows (declared with each route, checked by api/access.ts);
 * there is no way to turn that off.
 */
export function createApp(deps: ApiDependencies): Express {
  const app = express();
  app.disable('x-powered-by');
  const metrics = new MetricCatalog(deps.db);
  const customers = new CustomerDirectory(deps.db);
  const logger = typeof deps.log === 'function' ? createLogger('api', { level: 'info', destination: deps.log }) : (deps.log ?? createLogger('api'));
  const apiMetrics = new ApiMetrics(deps.db);
  const authenticator = new ApiKeyAuthenticator(deps.db, { cacheTtlMs: deps.apiKeyCacheTtlMs });
  const limits = deps.rateLimit ?? rateLimitFromEnv();
  const health = healthHandlers({ db: deps.db, temporal: deps.temporal, draining: deps.draining });
  const access = new AccessControl(authenticator, deps.accessClock);

  // Before any handler: log and measure, authenticate and authorize, throttle, then parse and inspect the body
  // (ingestion bodies up to 5 mb, everything else 1 mb), then replay or record Idempotency-Keys.
  app.use(observeRequests(apiMetrics, logger));
  // RFC 9112 requires Host on HTTP/1.1. Node refused a request without one itself, with a bare 400 and no body
  // (its requireHostHeader check, turned off in answerClientErrors so that the refusal is a problem here).
  app.use((req, _res, next) => next(req.httpVersion === '1.1' && req.headers.host === undefined ? new ApiProblem('malformed_request', 'an HTTP/1.1 request must carry a Host header') : undefined));
  app.use(access.middleware);
  if (limits) app.use(rateLimit(new TokenBucketLimiter(limits, deps.accessClock)));
  app.use(requireJsonBodies);
  // Ingestion keeps the raw text: a number JSON.parse cannot read as sent is marked, and its event refused.
  app.use('/v1/events', express.json({ limit: '5mb', verify: keepRawJson }), markInexactJsonNumbers);
  app.use(express.json({ limit: '1mb' }));
  app.use(inspectParsedInput);
  app.use(idempotency(deps.db, { ...deps.idempotency, log: entryLogger(logger) }));

  const operations = declareRoutes(app);
  operations.get('/healthz', PUBLIC, health.liveness);
  operations.get('/readyz', PUBLIC, health.readiness);
  operations.get('/metrics', { allow: ['monitoring'] }, metricsHandler(apiMetrics));
  app.use(
    '/v1/events',
    eventsRouter({
      db: deps.db,
      metrics,
      customers,
      usageSignals: deps.usageSignals,
      walletWatcher: deps.walletWatcher,
      now: deps.now,
      gateway: deps.gateway ?? new SandboxGateway(deps.db),
      onIngested: (outcome) => apiMetrics.recordIngestion(outcome),
    }),
  );
  app.use('/v1/customers', customersRouter(deps.db));
  app.use('/v1/plans', plansRouter(deps.db));
  app.use('/v1/metrics', metricsRouter(deps.db, metrics));
  app.use('/v1/subscriptions', subscriptionsRouter(deps.db, deps.temporal));
  app.use('/v1/subscriptions', usageRouter(deps.db));
  app.use('/v1/subscriptions', subscriptionLifecycleRouter(deps.db, deps.temporal));
  app.use('/v1', reratesRouter(deps.db, deps.temporal));
  app.use('/v1/invoices', invoicesRouter(deps.db));
  app.use('/v1/customers', paymentMethodsRouter(deps.db, { onPaymentMethodUpdated: deps.onPaymentMethodUpdated ?? retryDunningOnNewPaymentMethod(deps.db, deps.temporal) }));
  app.use('/v1/invoices', refundsRouter(deps.db, deps.gateway ?? new SandboxGateway(deps.db)));
  app.use('/v1/webhook-endpoints', webhookEndpointsRouter(deps.db));
  app.use('/v1/reports', reportsRouter(deps.db));
  app.use('/v1/reconciliation', reconciliationRouter(deps.db));

  app.use('/v1/api-keys', apiKeysRouter(deps.db, authenticator));
  app.use('/v1/customers', usageTokensRouter(deps.db));

  // The customer usage page (docs/usage-page.md) and what it reads; invoice documents (HTML and PDF).
  app.use(usagePageRouter());
  app.use('/v1/usage-token', usageTokenRouter(deps.db));
  app.use('/v1/subscriptions', subscriptionUsageHistoryRouter(deps.db, { now: deps.now }));
  app.use('/v1/invoices', invoiceDocumentsRouter(deps.db));
  // Prepaid credit and entitlements (docs/wallets.md).
  app.use('/v1/customers', entitlementsRouter(deps.db, { now: deps.now }));
  app.use('/v1/customers', walletsRouter(deps.db, { now: deps.now, onWalletChanged: walletChangeHook(deps, logger) }));
  app.use('/v1/customers', walletTopUpsRouter(deps.db, deps.temporal, { now: deps.now, waitMs: deps.topUpWaitMs }));
  // Accepted usage no subscription prices: visibly pending, not lost (docs/usage-events.md "Uncovered usage").
  app.use('/v1/customers', uncoveredUsageRouter(deps.db));
  // The contract: /openapi.json and its reference page /docs (api/openapi.ts).
  app.use(openApiRouter(app));
  for (const extra of deps.extraRouters ?? []) app.use(extra.path, extra.router);

  app.use((req, _res, next) => next(new ApiProblem('not_found', `no route ${req.method} ${req.path}`)));
  app.use(translateClientErrors);
  app.use(captureErrors);
  app.use(problemHandler);
  // An undeclared route cannot exist: the app does not start until every route says who may call it.
  assertEveryRouteDeclared(app);
  access.learnRoutes(app);
  // Every server made with app.listen (api/main.ts, scripts/start.ts, tests) answers what Node's HTTP parser refuses
  // before Express (a URL over 16 KB, a bad request line) with a problem document, not a bare status line.
  const listen = app.listen.bind(app) as (...args: unknown[]) => HttpServer;
  app.listen = ((...args: unknown[]) => answerClientErrors(listen(...args))) as Express['listen'];
  return app;
}

/**
 * After a grant or new wallet settings commit: the watcher looks at the balance and wakes the wallet workflow
 * (retrying each tick); without a watcher, the workflow is woken at once, best effort (the grant is committed).
 */
function walletChangeHook(deps: ApiDependencies, logger: Logger): (customerId: string) => Promise<void> {
  return async (customerId) => {
    if (deps.walletWatcher) return deps.walletWatcher.recordChange(customerId);
    await wakeWalletWorkflow(deps.temporal, customerId).catch((error: unknown) => logger.warn({ customerId, error: String(error) }, 'could not wake the wallet workflow'));
  };
}
