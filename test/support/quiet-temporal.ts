/**
 * Test runs log errors only: the expected retries (lost gateway responses, declined cards, killed workers) and
 * one API log line per request would otherwise bury the test report. TEMPORAL_TEST_LOG_LEVEL=INFO and
 * METERLOOP_LOG=all bring them back.
 */
import { DefaultLogger, LogLevel, Runtime } from '@temporalio/worker';

Runtime.install({ logger: new DefaultLogger((process.env.TEMPORAL_TEST_LOG_LEVEL as LogLevel | undefined) ?? 'ERROR') });

process.env.METERLOOP_LOG ??= 'errors';
