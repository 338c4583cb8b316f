import type { Client } from '@temporalio/client';
import express, { Express } from 'express';
import type { Database } from '../store/database';
import { MetricCatalog } from '../store/metrics';
import { CustomerDirectory } from './customer-directory';
import { ApiProblem, problemHandler } from './problem';
import { eventsRouter } from './routes/events';
import { metricsRouter } from './routes/metrics';
import { usageRouter } from './routes/usage';
import type { UsageSignalCoalescer } from './usage-signals';
import { customersRouter } from './routes/customers';
import { invoicesRouter } from './routes/invoices';
import { plansRouter } from './routes/plans';
import { subscriptionsRouter } from './routes/subscriptions';
import type { PaymentGateway } from '../payments/gateway';
import { SandboxGateway } from '../payments/sandbox-gateway';
import { PaymentMethodHooks, paymentMethodsRouter } from './routes/payment-methods';
import { refundsRouter } from './routes/refunds';
import { webhookEndpointsRouter } from './routes/webhook-endpoints';

export interface ApiDependencies {
  readonly db: Database;
  readonly temporal: Client;
  /** Coalesces usage into summary signals; the caller starts and stops it (see createUsageSignals). */
  readonly usageSignals?: UsageSignalCoalescer;
  /** The clock ingestion judges timestamps by; tests on a time-skipping server pass the server's time. */
  readonly now?: () => Date;
  /** The gateway refunds go through; the sandbox gateway (on the same database) when omitted. */
  readonly gateway?: PaymentGateway;
  /** Called after a customer's payment method changes (dunning retries at once); see routes/payment-methods.ts. */
  readonly onPaymentMethodUpdated?: PaymentMethodHooks['onPaymentMethodUpdated'];
}

/** The HTTP API: thin handlers that validate, call one store function or workflow, and respond. */
export function createApp(deps: ApiDependencies): Express {
  const app = express();
  app.disable('x-powered-by');
  const metrics = new MetricCatalog(deps.db);
  const customers = new CustomerDirectory(deps.db);

  // Ingestion parses its own (larger) bodies; everything else is small.
  app.use('/v1/events', eventsRouter({ db: deps.db, metrics, customers, usageSignals: deps.usageSignals, now: deps.now }));
  app.use(express.json({ limit: '1mb' }));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.use('/v1/customers', customersRouter(deps.db));
  app.use('/v1/plans', plansRouter(deps.db));
  app.use('/v1/metrics', metricsRouter(deps.db, metrics));
  app.use('/v1/subscriptions', subscriptionsRouter(deps.db, deps.temporal));
  app.use('/v1/subscriptions', usageRouter(deps.db));
  app.use('/v1/invoices', invoicesRouter(deps.db));
  app.use('/v1/customers', paymentMethodsRouter(deps.db, { onPaymentMethodUpdated: deps.onPaymentMethodUpdated }));
  app.use('/v1/invoices', refundsRouter(deps.db, deps.gateway ?? new SandboxGateway(deps.db)));
  app.use('/v1/webhook-endpoints', webhookEndpointsRouter(deps.db));

  app.use((req, _res, next) => next(new ApiProblem('not_found', `no route ${req.method} ${req.path}`)));
  app.use(problemHandler);
  return app;
}
