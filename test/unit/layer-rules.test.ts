/**
 * The import table of DESIGN.md is a lint rule (eslint.config.mjs): these probes feed ESLint a forbidden import
 * as if it were written in a real file of the folder, and expect the layer rule to refuse it.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const root = path.resolve(__dirname, '../..');
const run = promisify(execFile);

async function lintAs(file: string, source: string): Promise<string[]> {
  const eslint = path.join(root, 'node_modules/.bin/eslint');
  const linting = run(eslint, ['--config', path.join(root, 'test/support/eslint-layer-probe.config.mjs'), '--format', 'json', '--stdin', '--stdin-filename', file], {
    cwd: root,
    maxBuffer: 10 * 1024 * 1024,
  });
  linting.child.stdin?.end(source);
  // ESLint exits 1 when it reports a problem, which is what most probes expect: read its output either way.
  const { stdout } = await linting.catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '[]' }));
  const [result] = JSON.parse(stdout) as { messages: { ruleId: string | null; message: string }[] }[];
  return result.messages.filter((message) => message.ruleId === 'no-restricted-imports').map((message) => message.message);
}

const probes: [file: string, source: string, reason: RegExp][] = [
  ['api/app.ts', "import { executeRefund } from '../activities/refunds';\nexport const probe = executeRefund;\n", /never imports activities/],
  ['workflows/subscription.ts', "import { findPlan } from '../store/catalog';\nexport const probe = findPlan;\n", /only through contract/],
  ['domain/money.ts', "import { findPlan } from '../store/catalog';\nexport const probe = findPlan;\n", /domain\/ is pure/],
  ['store/usage.ts', "import { subscriptionWorkflowId } from '../workflows/definitions';\nexport const probe = subscriptionWorkflowId;\n", /bottom layer/],
  ['activities/usage.ts', "import { usageRecordedSignal } from '../workflows/definitions';\nexport const probe = usageRecordedSignal;\n", /Activities import/],
  ['tracing/index.ts', "import { createLogger } from '../logging/logger';\nexport const probe = createLogger;\n", /tracing\/ is started first/],
  ['workflows/subscription.ts', "import { startTracing } from '../tracing';\nexport const probe = startTracing;\n", /only through contract/],
  ['worker/main.ts', "import { runBenchmarks } from '../bench/run';\nexport const probe = runBenchmarks;\n", /does not import api/],
  ['config/tuning.ts', "import { createDatabase } from '../store/database';\nexport const probe = createDatabase;\n", /config\/ reads process settings/],
  ['workflows/subscription.ts', "import { billingTaskQueue } from '../config/tuning';\nexport const probe = billingTaskQueue;\n", /only through contract/],
];

test.each(probes)('a forbidden import in %s fails lint', async (file, source, reason) => {
  const messages = await lintAs(file, source);
  expect(messages).toEqual([expect.stringMatching(reason)]);
}, 120_000);

test('an allowed import passes the layer rule', async () => {
  const messages = await lintAs('api/app.ts', "import { subscriptionWorkflowId } from '../workflows/definitions';\nexport const probe = subscriptionWorkflowId;\n");
  expect(messages).toEqual([]);
}, 120_000);
