import { appError } from '../app-error.js';
import type { SandboxApp, WebhookPayload } from '../app.js';
import type { Exchange } from './http.js';

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** The body of an incoming-webhook request: JSON, or a form whose `payload` field is JSON. */
function parsePayload(contentType: string, body: string): WebhookPayload {
  let text = body;
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    text = new URLSearchParams(body).get('payload') ?? '';
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (isRecord(parsed)) return parsed;
  } catch (err) {
    throw Object.assign(appError('web.incoming_webhook.parse.app_error', 400), { cause: err });
  }
  throw appError('web.incoming_webhook.parse.app_error', 400);
}

/** POST /hooks/{hook_id} (web/webhook.go incomingWebhook): answers a plain-text `ok`. */
export async function incomingWebhook(ex: Exchange, app: SandboxApp, hookId: string): Promise<void> {
  const hook = app.store.webhooks.get(hookId);
  if (!hook) throw appError('web.incoming_webhook.invalid.app_error', 400);
  const payload = parsePayload(ex.req.headers['content-type'] ?? '', await ex.rawBody());
  app.webhookPost(hook, payload);
  ex.sendText(200, 'ok');
}
