/**
 * docs/openapi.json is a valid OpenAPI 3.1 document (checked by @seriousme/openapi-schema-validator, run in its own
 * Node process because it ships as ES modules only) and is what `npm run openapi` generates today.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { offlineOpenApiDocument, openApiJsonText } from '../../api/openapi-offline';
import type { OpenApiDocument } from '../../api/openapi';

const COMMITTED = path.join(__dirname, '..', '..', 'docs', 'openapi.json');

/** `{ valid, errors }` from the registry's validator, for a document written to a temporary file. */
function validateOpenApi(document: OpenApiDocument): { valid: boolean; errors?: unknown } {
  const dir = mkdtempSync(path.join(tmpdir(), 'openapi-'));
  try {
    const file = path.join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(document));
    const script = `import { Validator } from '@seriousme/openapi-schema-validator';
const validator = new Validator();
const result = await validator.validate(process.argv[1]);
process.stdout.write(JSON.stringify({ valid: result.valid, version: validator.version, errors: result.errors }));`;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script, file], { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8' });
    return JSON.parse(output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let generated: OpenApiDocument;
beforeAll(async () => {
  generated = await offlineOpenApiDocument();
});

test('the generated document validates against the OpenAPI 3.1 schema', () => {
  expect(generated.openapi).toBe('3.1.0');
  expect(validateOpenApi(generated)).toMatchObject({ valid: true, version: '3.1' });
});

test('the validator does reject a broken document (the check above can fail)', () => {
  const broken = structuredClone(generated);
  broken.paths['/v1/customers'].post.responses = 'none';
  expect(validateOpenApi(broken).valid).toBe(false);
});

test('docs/openapi.json is up to date (run `npm run openapi` after changing routes or schemas)', () => {
  expect(readFileSync(COMMITTED, 'utf8')).toBe(openApiJsonText(generated));
});
