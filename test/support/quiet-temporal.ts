/**
 * Test runs log Temporal errors only: the expected retries (lost gateway responses, declined cards, killed
 * workers) would otherwise bury the test report in warnings. Set TEMPORAL_TEST_LOG_LEVEL=INFO to see them.
 */
import { DefaultLogger, LogLevel, Runtime } from '@temporalio/worker';

Runtime.install({ logger: new DefaultLogger((process.env.TEMPORAL_TEST_LOG_LEVEL as LogLevel | undefined) ?? 'ERROR') });
