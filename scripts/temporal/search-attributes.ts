import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

export type SearchAttributeTypeName = 'Keyword' | 'Text' | 'Int' | 'Double' | 'Bool' | 'Datetime' | 'KeywordList';

/**
 * Registers search attributes on a server that has no start-up flag for them (the time-skipping test server),
 * so workflows can upsert them there as they do on the dev server and in docker-compose.
 */
export async function registerSearchAttributes(
  connection: Connection,
  searchAttributes: Record<string, 'Keyword' | 'Datetime' | 'Bool'>,
  namespace = 'default',
): Promise<void> {
  const indexedValueType = {
    Keyword: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    Datetime: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    Bool: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  } as const;
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(Object.entries(searchAttributes).map(([name, type]) => [name, indexedValueType[type]])),
  });
}
