/**
 * Checks HTTP responses against the OpenAPI document (api/openapi.ts): the route is documented, the status is
 * one the operation documents, the content type is documented for that status, and a JSON body matches the
 * documented schema (ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses). The shared test HTTP helpers (./http.ts)
 * run every response through it, so the integration and e2e tests keep the document honest.
 */
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { OpenApiDocument } from '../../api/openapi';

const DOCUMENT_ID = 'meterloop-openapi';

interface Operation {
  readonly method: string;
  readonly template: string;
  readonly pattern: RegExp;
  readonly params: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- an OpenAPI operation object
  readonly operation: any;
}

export interface CheckedResponse {
  readonly method: string;
  /** Path and query as requested. */
  readonly url: string;
  readonly status: number;
  readonly contentType: string;
  /** The parsed JSON body, or undefined when the body is not JSON. */
  readonly json?: unknown;
}

export class ResponseContract {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly operations: Operation[] = [];
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(readonly document: OpenApiDocument) {
    addFormats(this.ajv);
    // The components, addressable as meterloop-openapi#/components/schemas/<name> by every response schema.
    this.ajv.addSchema({ $id: DOCUMENT_ID, components: document.components }, DOCUMENT_ID);
    for (const [template, methods] of Object.entries(document.paths as Record<string, Record<string, unknown>>)) {
      const source = template
        .split('/')
        .map((segment) => (segment.startsWith('{') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/');
      for (const [method, operation] of Object.entries(methods)) {
        this.operations.push({ method: method.toUpperCase(), template, pattern: new RegExp(`^${source}/?$`, 'i'), params: (template.match(/\{/g) ?? []).length, operation });
      }
    }
    // Literal segments win over parameters, as Express tries them in that order here (e.g. /usage-token/me). Express
    // matches paths case-insensitively, and so does this.
    this.operations.sort((a, b) => a.params - b.params);
  }

  /** The reasons a response breaks the contract; empty when it keeps it. */
  violations(response: CheckedResponse): string[] {
    const method = response.method.toUpperCase() === 'HEAD' ? 'GET' : response.method.toUpperCase();
    if (method === 'OPTIONS') return [];
    const path = decodeURIComponentSafe(response.url.split('?')[0]);
    const found = this.operations.find((candidate) => candidate.method === method && candidate.pattern.test(path));
    const where = `${response.method} ${response.url} -> ${response.status} ${response.contentType}`;
    const mediaType = response.contentType.split(';')[0].trim().toLowerCase();
    if (!found) {
      // Unknown routes and methods get the generic problem answers (404 not_found, 401, 403, 400).
      if (mediaType === 'application/problem+json' && response.status >= 400) return this.check('#/components/schemas/ProblemResponse', response.json, where);
      return [`${where}: no documented operation for ${method} ${path}`];
    }
    const documented = found.operation.responses?.[String(response.status)];
    if (!documented) {
      return [`${where}: status ${response.status} is not documented for ${method} ${found.template} (documented: ${Object.keys(found.operation.responses ?? {}).join(', ')})`];
    }
    const content = documented.content as Record<string, { schema?: unknown }> | undefined;
    if (!content) return [];
    const media = content[mediaType];
    if (!media) return [`${where}: content type ${mediaType} is not documented for ${response.status} of ${method} ${found.template} (documented: ${Object.keys(content).join(', ')})`];
    if (response.method.toUpperCase() === 'HEAD' || !/json/.test(mediaType) || !media.schema) return [];
    return this.check(media.schema, response.json, where);
  }

  /** Throws, naming every violation, when the response breaks the contract. */
  assert(response: CheckedResponse): void {
    const problems = this.violations(response);
    if (problems.length) throw new Error(`response does not match the OpenAPI document (docs/openapi.json):\n  ${problems.join('\n  ')}`);
  }

  private check(schema: unknown, body: unknown, where: string): string[] {
    // By the schema itself: operations answering the same problem codes share one compiled validator.
    const key = JSON.stringify(schema);
    let validate = this.validators.get(key);
    if (!validate) {
      const rooted = typeof schema === 'string' ? { $ref: `${DOCUMENT_ID}${schema}` } : JSON.parse(JSON.stringify(schema).replace(/"#\/components\//g, `"${DOCUMENT_ID}#/components/`));
      validate = this.ajv.compile(rooted);
      this.validators.set(key, validate);
    }
    if (validate(body)) return [];
    return (validate.errors ?? []).slice(0, 10).map((error) => `${where}: body${error.instancePath} ${error.message}${error.params ? ` ${JSON.stringify(error.params)}` : ''}`);
  }
}

function decodeURIComponentSafe(path: string): string {
  try {
    return decodeURI(path);
  } catch {
    return path;
  }
}

/** One contract per document (building the ajv validators is the costly part). */
const contracts = new WeakMap<OpenApiDocument, ResponseContract>();
export function contractFor(document: OpenApiDocument): ResponseContract {
  let contract = contracts.get(document);
  if (!contract) {
    contract = new ResponseContract(document);
    contracts.set(document, contract);
  }
  return contract;
}

/**
 * A fetch that checks every answer against the document before handing it on, for code that talks to the API
 * through the TypeScript client (clients/typescript: pass it as `fetch`).
 */
export function contractCheckingFetch(document: OpenApiDocument, send: (request: Request) => Promise<Response> = (request) => fetch(request)): (request: Request) => Promise<Response> {
  const contract = contractFor(document);
  return async (request) => {
    const response = await send(request);
    const url = new URL(request.url);
    const contentType = response.headers.get('content-type') ?? '';
    const text = await response.clone().text();
    contract.assert({ method: request.method, url: `${url.pathname}${url.search}`, status: response.status, contentType, json: text && contentType.includes('json') ? JSON.parse(text) : undefined });
    return response;
  };
}
