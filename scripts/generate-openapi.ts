/** `npm run openapi`: writes docs/openapi.json from the app's routes and zod schemas (api/openapi.ts). */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { offlineOpenApiDocument, openApiJsonText } from '../api/openapi-offline';

export const OPENAPI_FILE = path.join(__dirname, '..', 'docs', 'openapi.json');

async function main(): Promise<void> {
  const document = await offlineOpenApiDocument();
  writeFileSync(OPENAPI_FILE, openApiJsonText(document));
  console.log(`wrote ${path.relative(process.cwd(), OPENAPI_FILE)}: ${Object.keys(document.paths).length} paths`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
