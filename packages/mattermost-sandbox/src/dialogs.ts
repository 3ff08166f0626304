import { appError, invalidParam, permissionError } from './app-error.js';
import type { SandboxApp } from './app.js';
import { broadcast } from './hub.js';
import { postToIntegration } from './post-actions.js';

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

type Kind = 'string' | 'bool' | 'int';

/** Go's decoder: a field of the wrong JSON type fails the whole request (null leaves the zero value). */
function decodeFields<T>(raw: Record<string, unknown>, spec: Record<string, Kind>): T {
  const out: Record<string, unknown> = {};
  for (const [key, kind] of Object.entries(spec)) {
    const value = raw[key];
    if (value === undefined || value === null) {
      out[key] = kind === 'string' ? '' : kind === 'bool' ? false : 0;
      continue;
    }
    const ok =
      kind === 'string'
        ? typeof value === 'string'
        : kind === 'bool'
          ? typeof value === 'boolean'
          : typeof value === 'number' && Number.isSafeInteger(value);
    if (!ok) throw invalidParam('dialog');
    out[key] = value;
  }
  return out as T;
}

function list(v: unknown): unknown[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) throw invalidParam('dialog');
  return v;
}

/** model.DialogElement (the date/time fields and `refresh` are omitempty). */
function decodeElement(raw: unknown): Record<string, unknown> {
  if (!isRecord(raw)) throw invalidParam('dialog');
  const element = decodeFields<Record<string, unknown>>(raw, {
    display_name: 'string',
    name: 'string',
    type: 'string',
    subtype: 'string',
    default: 'string',
    placeholder: 'string',
    help_text: 'string',
    optional: 'bool',
    min_length: 'int',
    max_length: 'int',
    data_source: 'string',
    data_source_url: 'string',
    multiselect: 'bool',
    refresh: 'bool',
    min_date: 'string',
    max_date: 'string',
    time_interval: 'int',
  });
  const options =
    list(raw.options)?.map((o) =>
      o === null
        ? null
        : isRecord(o)
          ? decodeFields(o, { text: 'string', value: 'string' })
          : invalidOption(),
    ) ?? null;
  const { data_source_url, refresh, min_date, max_date, time_interval, ...always } = element;
  return {
    ...always,
    ...(data_source_url !== '' ? { data_source_url } : {}),
    options,
    ...(refresh === true ? { refresh } : {}),
    ...(min_date !== '' ? { min_date } : {}),
    ...(max_date !== '' ? { max_date } : {}),
    ...(time_interval !== 0 ? { time_interval } : {}),
  };
}

function invalidOption(): never {
  throw invalidParam('dialog');
}

/** model.Dialog. */
function decodeDialog(raw: unknown): Record<string, unknown> {
  if (raw === undefined || raw === null) raw = {};
  if (!isRecord(raw)) throw invalidParam('dialog');
  const dialog = decodeFields<Record<string, unknown>>(raw, {
    callback_id: 'string',
    title: 'string',
    introduction_text: 'string',
    icon_url: 'string',
    submit_label: 'string',
    notify_on_cancel: 'bool',
    state: 'string',
    source_url: 'string',
  });
  const elements = list(raw.elements)?.map(decodeElement) ?? null;
  const { source_url, ...always } = dialog;
  return {
    callback_id: always.callback_id,
    title: always.title,
    introduction_text: always.introduction_text,
    icon_url: always.icon_url,
    elements,
    submit_label: always.submit_label,
    notify_on_cancel: always.notify_on_cancel,
    state: always.state,
    ...(source_url !== '' ? { source_url } : {}),
  };
}

/** A dialog the server told a user's clients to open (the `open_dialog` event's payload). */
export interface OpenedDialog {
  /** The client trigger id (the signed trigger id is never shown to clients). */
  trigger_id: string;
  url: string;
  dialog: Record<string, unknown>;
}

/**
 * api4 openDialog (APIHandler: no session needed, the trigger id is the credential) →
 * App.OpenInteractiveDialog. The trigger must decode, carry the server's signature and be younger
 * than the timeout; the dialog is then shown to the trigger's user only (`open_dialog` with the
 * request as a JSON string and the client trigger id). An invalid dialog is only logged by
 * Mattermost (OpenDialogRequest.IsValid), so the sandbox shows it too.
 */
export function openDialog(app: SandboxApp, body: unknown): void {
  if (!isRecord(body)) throw invalidParam('dialog');
  const request = decodeFields<{ trigger_id: string; url: string }>(body, {
    trigger_id: 'string',
    url: 'string',
  });
  const dialog = decodeDialog(body.dialog);
  if (request.url === '') throw invalidParam('url');
  // The trigger lives as long as an outgoing request may take (OpenInteractiveDialog's timeout).
  const { clientTriggerId, userId } = app.triggers.verify(request.trigger_id, app.config.outgoingTimeoutMs);
  const opened: OpenedDialog = { trigger_id: clientTriggerId, url: request.url, dialog };
  app.openedDialogs.set(userId, [...(app.openedDialogs.get(userId) ?? []), opened]);
  app.hub.publish({
    event: 'open_dialog',
    data: { dialog: JSON.stringify(opened) },
    broadcast: broadcast({ user_id: userId }),
  });
}

/**
 * api4 submitDialog → App.SubmitInteractiveDialog. `user_id` is the session's, whatever the body
 * says; the caller must be able to read `channel_id` and view `team_id` (an empty team id fails,
 * as SessionHasPermissionToTeam does). Mattermost does not check that a dialog with this URL,
 * callback id or state was ever opened for the caller: the integration must authenticate what it
 * receives (e.g. a MAC in `state`). The server POSTs model.SubmitDialogRequest with `type:
 * "dialog_submission"` and no `url`; the answer is decoded leniently into SubmitDialogResponse.
 */
export async function submitDialog(
  app: SandboxApp,
  userId: string,
  body: unknown,
): Promise<Record<string, unknown>> {
  const { store } = app;
  if (!isRecord(body)) throw invalidParam('dialog');
  const submit = decodeFields<{
    url: string;
    callback_id: string;
    state: string;
    channel_id: string;
    team_id: string;
    cancelled: boolean;
  }>(body, {
    type: 'string',
    url: 'string',
    callback_id: 'string',
    state: 'string',
    user_id: 'string',
    channel_id: 'string',
    team_id: 'string',
    cancelled: 'bool',
  });
  const submission = body.submission ?? null;
  if (submission !== null && !isRecord(submission)) throw invalidParam('dialog');
  if (submit.url === '') throw invalidParam('url');
  const channel = store.channels.get(submit.channel_id);
  if (!channel) throw appError('app.channel.get.existing.app_error', 404);
  if (!store.canReadChannel(userId, channel)) throw permissionError();
  const viewsTeam =
    submit.team_id !== '' && (store.isTeamMember(submit.team_id, userId) || store.isSystemAdmin(userId));
  if (!viewsTeam) throw permissionError();
  const answer = await postToIntegration(
    submit.url,
    {
      type: 'dialog_submission',
      callback_id: submit.callback_id,
      state: submit.state,
      user_id: userId,
      channel_id: submit.channel_id,
      team_id: submit.team_id,
      submission,
      cancelled: submit.cancelled,
    },
    app.config.outgoingTimeoutMs,
  );
  return decodeSubmitResponse(answer);
}

/** `json.NewDecoder(resp.Body).Decode(&response)` whose error is ignored: what decodes is kept. */
function decodeSubmitResponse(body: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return {};
  }
  if (!isRecord(raw)) return {};
  const out: Record<string, unknown> = {};
  if (typeof raw.error === 'string' && raw.error !== '') out.error = raw.error;
  if (isRecord(raw.errors) && Object.values(raw.errors).every((v) => typeof v === 'string')) {
    if (Object.keys(raw.errors).length > 0) out.errors = raw.errors;
  }
  if (typeof raw.type === 'string' && raw.type !== '') out.type = raw.type;
  if (isRecord(raw.form)) out.form = raw.form;
  return out;
}
