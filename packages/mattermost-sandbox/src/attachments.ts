import { newId } from './ids.js';

/**
 * Interactive message attachments (`props.attachments`) as the server keeps them: decoded into
 * model.MessageAttachment / model.PostAction (message_attachment.go, integration_action.go) when
 * a post is saved, so what is stored and served has exactly those structs' fields.
 */

type Json = Record<string, unknown>;

const isRecord = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A value Go's json.Unmarshal could not put into the field: the whole attachment is dropped. */
class DecodeError extends Error {}

function str(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new DecodeError();
  return v;
}

function bool(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new DecodeError();
  return v;
}

function int64(v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new DecodeError();
  return v;
}

function list(v: unknown): unknown[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) throw new DecodeError();
  return v;
}

function object(v: unknown): Json | null {
  if (v === undefined || v === null) return null;
  if (!isRecord(v)) throw new DecodeError();
  return v;
}

/** model.SlackCompatibleBool: true/false, or the strings "true"/"false" in any case. */
function slackBool(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  throw new DecodeError();
}

/** model.PostAction: every field `omitempty`. */
function decodeAction(raw: Json): Json {
  const options = list(raw.options)?.map((o) => {
    const option = object(o);
    return option === null ? null : { text: str(option.text), value: str(option.value) };
  });
  const integration = object(raw.integration);
  const context = integration === null ? null : object(integration.context);
  const action: Json = {};
  const put = (key: string, value: unknown, present: boolean): void => {
    if (present) action[key] = value;
  };
  const id = str(raw.id);
  const type = str(raw.type);
  const name = str(raw.name);
  const disabled = bool(raw.disabled);
  const style = str(raw.style);
  const dataSource = str(raw.data_source);
  const defaultOption = str(raw.default_option);
  const cookie = str(raw.cookie);
  const url = integration === null ? '' : str(integration.url);
  put('id', id, id !== '');
  put('type', type, type !== '');
  put('name', name, name !== '');
  put('disabled', true, disabled);
  put('style', style, style !== '');
  put('data_source', dataSource, dataSource !== '');
  put('options', options, options !== undefined && options.length > 0);
  put('default_option', defaultOption, defaultOption !== '');
  if (integration !== null) {
    action.integration = {
      ...(url !== '' ? { url } : {}),
      ...(context !== null && Object.keys(context).length > 0 ? { context } : {}),
    };
  }
  put('cookie', cookie, cookie !== '');
  return action;
}

/** model.MessageAttachment; nil actions and fields are dropped (Post.Attachments). */
function decodeAttachment(raw: Json): Json {
  const fields = list(raw.fields)
    ?.map((f) => object(f))
    .filter((f) => f !== null)
    .map((f) => ({ title: str(f.title), value: f.value ?? null, short: slackBool(f.short) }));
  const actions = (list(raw.actions) ?? [])
    .map((a) => object(a))
    .filter((a) => a !== null)
    .map(decodeAction);
  return {
    id: int64(raw.id),
    fallback: str(raw.fallback),
    color: str(raw.color),
    pretext: str(raw.pretext),
    author_name: str(raw.author_name),
    author_link: str(raw.author_link),
    author_icon: str(raw.author_icon),
    title: str(raw.title),
    title_link: str(raw.title_link),
    text: str(raw.text),
    fields: fields ?? null,
    image_url: str(raw.image_url),
    thumb_url: str(raw.thumb_url),
    footer: str(raw.footer),
    footer_icon: str(raw.footer_icon),
    ts: raw.ts ?? null,
    ...(actions.length > 0 ? { actions } : {}),
  };
}

/**
 * Post.Attachments: the attachments that decode; an element that does not (a wrongly typed
 * field, or not an object) is left out, and a value that is not a list gives none. The
 * sandbox matches JSON keys exactly, where Go's decoder also accepts other letter cases.
 */
function attachmentsOf(value: unknown): Json[] {
  if (!Array.isArray(value)) return [];
  const out: Json[] = [];
  for (const element of value) {
    try {
      const raw = object(element);
      out.push(decodeAttachment(raw ?? {}));
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
    }
  }
  return out;
}

const actionsOf = (attachment: Json): Json[] => (attachment.actions as Json[] | undefined) ?? [];

/**
 * Post.PreCommit → Post.GenerateActionIds, run when a post is saved or updated: a present
 * `attachments` prop is replaced by its decoded form (`null` when nothing decodes, as Go writes
 * a nil slice), and every action without an id gets a new 26-character one.
 */
export function withActionIds(props: Json): Json {
  if (props.attachments === undefined || props.attachments === null) return props;
  const attachments = attachmentsOf(props.attachments);
  for (const attachment of attachments) {
    for (const action of actionsOf(attachment)) if (action.id === undefined) action.id = newId();
  }
  return { ...props, attachments: attachments.length > 0 ? attachments : null };
}

/**
 * Post.StripActionIntegrations (Post.ToJSON and Post.EncodeJSON call it for everything sent to
 * clients): each action's `integration`, and with it the integration's private `context`, is
 * removed. Only the server keeps them.
 */
export function strippedOfIntegrations(props: Json): Json {
  if (props.attachments === undefined || props.attachments === null) return props;
  const attachments = attachmentsOf(props.attachments).map((attachment) => {
    if (attachment.actions === undefined) return attachment;
    return {
      ...attachment,
      actions: actionsOf(attachment).map(({ integration: _integration, ...rest }) => rest),
    };
  });
  return { ...props, attachments: attachments.length > 0 ? attachments : null };
}

export interface StoredAction {
  id: string;
  type: string;
  dataSource: string;
  /** Absent when the action has no `integration`: such an action cannot be clicked. */
  integration?: { url: string; context?: Json };
}

/** Post.GetAction: the first action with this id, across all attachments. */
export function findAction(props: Json, actionId: string): StoredAction | undefined {
  for (const attachment of attachmentsOf(props.attachments)) {
    for (const action of actionsOf(attachment)) {
      if (action.id !== actionId) continue;
      const integration = action.integration as { url?: string; context?: Json } | undefined;
      return {
        id: actionId,
        type: (action.type as string | undefined) ?? '',
        dataSource: (action.data_source as string | undefined) ?? '',
        ...(integration
          ? {
              integration: {
                url: integration.url ?? '',
                ...(integration.context ? { context: integration.context } : {}),
              },
            }
          : {}),
      };
    }
  }
  return undefined;
}

/**
 * Post.AttachmentsEqual → MessageAttachment.Equals / PostAction.Equals, which compare every
 * field except an action's `disabled` and `style`.
 */
export function attachmentsEqual(a: Json, b: Json): boolean {
  const comparable = (props: Json): string =>
    JSON.stringify(
      attachmentsOf(props.attachments).map((attachment) => ({
        ...attachment,
        actions: actionsOf(attachment).map(({ disabled: _d, style: _s, ...rest }) => rest),
      })),
      (_key, value: unknown) =>
        isRecord(value)
          ? Object.fromEntries(Object.entries(value).sort(([x], [y]) => (x < y ? -1 : 1)))
          : value,
    );
  return comparable(a) === comparable(b);
}
