/**
 * The request log and latency: the first middleware. Request ids follow one rule (the caller's X-Request-Id when
 * well-formed, else a UUID, echoed in the response); pino-http writes one line per request through the shared pino
 * logger, and the latency histogram of ApiMetrics is observed with the same status.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler, Response } from 'express';
import { pinoHttp } from 'pino-http';
import type { LogEntry, Logger } from '../logging/logger';
import { accessOf } from './access';
import type { ApiMetrics } from './observability';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request's outcome, measured once for the metric and the log line: a client that went away is a 499. */
function outcomeOf(res: Response | ServerResponse): { status: number; seconds: number; aborted: boolean } {
  const express = res as Response;
  const aborted = !res.writableFinished;
  const started = express.locals.requestStarted as bigint; // hrtime nanoseconds, set by the first middleware
  return {
    status: aborted && !res.headersSent ? 499 : res.statusCode,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    aborted,
  };
}

/** The request log line: the route template (never the raw path: ids would reach logs), status, time, caller. */
function requestLine(req: IncomingMessage, res: ServerResponse): LogEntry {
  const { status, seconds, aborted } = outcomeOf(res);
  const access = accessOf(res as Response);
  const route = access?.route?.template;
  const error = (res as Response).locals.error as Error | undefined;
  return {
    method: req.method,
    path: route ?? null,
    ...(route ? {} : { raw_path: (req as { path?: string }).path?.slice(0, 200) }),
    status,
    duration_ms: Math.round(seconds * 1e6) / 1e3,
    api_key_id: access?.principal?.keyId ?? null,
    ...(aborted ? { aborted: true } : {}),
    ...(error ? { error: { message: error.message, stack: error.stack } } : {}),
  };
}

/**
 * The first middleware: assigns the request id (echoed in X-Request-Id; `req.log` carries it for handlers), and when
 * the response is done observes the latency and writes the log line, both labelled by route template.
 */
export function observeRequests(metrics: ApiMetrics, logger: Logger): RequestHandler {
  const requestLog = pinoHttp({
    logger,
    genReqId: (req, res) => {
      const incoming = req.headers['x-request-id'];
      const requestId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
      (res as Response).locals.requestId = requestId;
      res.setHeader('X-Request-Id', requestId);
      return requestId;
    },
    // Only what requestLine picks: bodies, query strings, headers and keys never reach the log (nor a logger's
    // bindings: the request and response serialize to nothing).
    quietReqLogger: true,
    quietResLogger: true,
    wrapSerializers: false,
    serializers: { req: () => undefined, res: () => undefined },
    customAttributeKeys: { reqId: 'request_id' },
    customLogLevel: (_req, res) => (outcomeOf(res).status >= 500 ? 'error' : 'info'),
    customSuccessMessage: () => 'request',
    customErrorMessage: () => 'request',
    customSuccessObject: (req, res) => requestLine(req, res),
    customErrorObject: (req, res) => requestLine(req, res),
  });
  return (req, res, next) => {
    res.locals.requestStarted = process.hrtime.bigint();
    let measured = false;
    const measure = (): void => {
      if (measured) return;
      measured = true;
      const { status, seconds } = outcomeOf(res);
      metrics.httpDuration.observe({ method: req.method, route: accessOf(res)?.route?.template ?? '(unmatched)', status: String(status) }, seconds);
    };
    res.on('finish', measure);
    res.on('close', measure);
    requestLog(req, res, next);
  };
}
