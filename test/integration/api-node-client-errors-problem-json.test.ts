/**
 * What Node's HTTP parser refuses before Express sees a request: a URL over 16 KB, headers over 16 KB, a request line
 * that is not HTTP, a header with a bad character, broken chunked framing. Node answered these with a bare status
 * line (`431` / `400`, no body, no content type): the only answers of the API that were not problem+json with a
 * code. Raw sockets, since fetch refuses to send most of them.
 */
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createApp } from '../../api/app';
import type { Database } from '../../store/database';
import { createTestDatabase } from '../support/database';
import { Client, Connection } from '@temporalio/client';

let db: Database;
let server: Server;
let temporal: Client;

beforeAll(async () => {
  db = await createTestDatabase();
  temporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
  server = await new Promise((resolve) => {
    const listening = createApp({ db, temporal, log: () => undefined }).listen(0, '127.0.0.1', () => resolve(listening));
  });
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await temporal?.connection.close();
  await db?.destroy();
});

/** Sends raw bytes and reads the whole answer (the server closes the connection after it). */
function raw(bytes: string): Promise<{ statusLine: string; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head, ...rest] = received.split('\r\n\r\n');
      const [statusLine, ...headerLines] = head.split('\r\n');
      resolve({ statusLine, headers: headerLines.join('\n').toLowerCase(), body: rest.join('\r\n\r\n') });
    });
    socket.write(bytes);
  });
}

const cases: { label: string; request: string; status: number; code: string }[] = [
  { label: 'a 20 KB URL', request: `GET /v1/invoices?customer_id=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, status: 431, code: 'request_header_fields_too_large' },
  { label: '20 KB of headers', request: `GET /v1/invoices HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`, status: 431, code: 'request_header_fields_too_large' },
  { label: 'a request line that is not HTTP', request: 'HELLO THERE\r\n\r\n', status: 400, code: 'malformed_request' },
  { label: 'a header with a bad character', request: 'GET /healthz HTTP/1.1\r\nHost: x\r\nBad\u0001Name: 1\r\n\r\n', status: 400, code: 'malformed_request' },
  {
    label: 'broken chunked framing',
    request: 'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
    status: 400,
    code: 'malformed_request',
  },
  { label: 'no Host header (HTTP/1.1)', request: 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n', status: 400, code: 'malformed_request' },
  { label: 'an unknown method', request: 'BREW /v1/invoices HTTP/1.1\r\nHost: x\r\n\r\n', status: 400, code: 'malformed_request' },
  { label: 'an HTTP/2 preface', request: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 400, code: 'malformed_request' },
  { label: 'an Expect header other than 100-continue', request: 'POST /v1/events HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', status: 417, code: 'expectation_failed' },
];

test.each(cases)('$label gets a problem+json $status with code $code', async ({ request, status, code }) => {
  const answer = await raw(request);
  expect({ statusLine: answer.statusLine, problemJson: answer.headers.includes('content-type: application/problem+json') }).toEqual({
    statusLine: expect.stringMatching(new RegExp(`^HTTP/1\\.1 ${status} `)),
    problemJson: true,
  });
  expect(JSON.parse(answer.body)).toMatchObject({ status, code });
});
