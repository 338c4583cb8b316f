import type { Router } from 'express';
import type { Database } from '../../store/database';
import {
  createWebhookEndpoint,
  findWebhookEndpoint,
  generateWebhookSecret,
  listWebhookDeliveries,
  listWebhookEndpoints,
  WebhookEndpointRow,
} from '../../store/notifications';
import { ApiProblem } from '../problem';
import { createWebhookEndpointBody, uuidParam } from '../schemas';
import { ADMIN_ONLY, declareRoutes } from '../route-declarations';

const iso = (value: Date | null): string | null => (value ? value.toISOString() : null);

/** The secret is shown once, at creation; listings show only its last four characters. */
function webhookEndpointJson(row: WebhookEndpointRow) {
  return {
    id: row.id,
    url: row.url,
    event_types: row.event_types,
    enabled: row.enabled,
    description: row.description,
    secret_hint: `...${row.secret.slice(-4)}`,
    created_at: iso(row.created_at),
  };
}

/**
 *   POST /v1/webhook-endpoints {url, event_types, enabled?, description?, secret?}
 *   GET  /v1/webhook-endpoints
 *   GET  /v1/webhook-endpoints/:id/deliveries   the delivery log (attempts, last status code, next try)
 */
export function webhookEndpointsRouter(db: Database): Router {
  const routes = declareRoutes();

  routes.post('/', ADMIN_ONLY, async (req, res) => {
    const body = createWebhookEndpointBody.parse(req.body);
    // fetch refuses a URL with a user or password, so every delivery to it would fail until given up, each failure
    // logging the URL. A receiver that wants a credential checks the signature (or a token in the path) instead.
    const url = new URL(body.url);
    if (url.username || url.password) {
      throw new ApiProblem('validation_failed', 'url must not contain a user name or password', [{ path: 'url', message: 'must not contain credentials' }]);
    }
    const row = await createWebhookEndpoint(db, {
      url: body.url,
      secret: body.secret ?? generateWebhookSecret(),
      eventTypes: [...new Set(body.event_types)],
      enabled: body.enabled ?? true,
      description: body.description ?? null,
    });
    res.status(201).json({ ...webhookEndpointJson(row), secret: row.secret });
  });

  routes.get('/', ADMIN_ONLY, async (_req, res) => {
    res.json({ data: (await listWebhookEndpoints(db)).map(webhookEndpointJson) });
  });

  routes.get('/:id/deliveries', ADMIN_ONLY, async (req, res) => {
    const id = uuidParam.safeParse(req.params.id);
    const endpoint = id.success ? await findWebhookEndpoint(db, id.data) : undefined;
    if (!endpoint) throw new ApiProblem('not_found', `no webhook endpoint ${req.params.id}`);
    const deliveries = await listWebhookDeliveries(db, { endpointId: endpoint.id });
    res.json({
      data: deliveries.map((delivery) => ({
        id: delivery.id,
        event_id: `evt_${delivery.outbox_id}`,
        event_type: delivery.event_type,
        status: delivery.status,
        attempt: delivery.attempt,
        last_status_code: delivery.last_status_code,
        last_error: delivery.last_error,
        next_attempt_at: iso(delivery.next_attempt_at),
        delivered_at: iso(delivery.delivered_at),
        created_at: iso(delivery.created_at),
      })),
    });
  });

  return routes.router;
}
