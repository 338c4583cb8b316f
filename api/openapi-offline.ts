/**
 * The OpenAPI document without a database or Temporal: an app whose connections dial nothing until used (and
 * nothing here uses them), so `npm run openapi` and the staleness test can build the document anywhere.
 */
import { Client, Connection } from '@temporalio/client';
import { createApp } from './app';
import { buildOpenApiDocument, OpenApiDocument } from './openapi';
import { describeRoutes } from './route-declarations';
import { createDatabase } from '../store/database';

export async function offlineOpenApiDocument(): Promise<OpenApiDocument> {
  const db = createDatabase('postgres://offline.invalid:1/none', 1);
  const connection = Connection.lazy({ address: '127.0.0.1:1' });
  try {
    const app = createApp({ db, temporal: new Client({ connection }), rateLimit: false, log: () => undefined });
    return buildOpenApiDocument(describeRoutes(app));
  } finally {
    await connection.close();
    await db.destroy();
  }
}

/** The committed file's text: stable key order as built, two-space indent, trailing newline. */
export function openApiJsonText(document: OpenApiDocument): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}
