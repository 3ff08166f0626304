/**
 * Requests the server makes to integrations (actions, dialogs, slash commands): a plain HTTP
 * client with ServiceSettings.OutgoingIntegrationRequestsTimeout. Mattermost's HTTP service
 * also refuses loopback and private addresses unless AllowedUntrustedInternalConnections lists
 * them; the sandbox, whose integrations run on 127.0.0.1, does not model that restriction.
 */

export interface OutgoingRequest {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export interface OutgoingAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** The integration could not be reached, timed out, or the URL cannot be requested at all. */
export class Unreachable extends Error {}

/** Only http(s) URLs are requested; anything else fails as a transport error would. */
export async function sendOutgoing(request: OutgoingRequest, timeoutMs: number): Promise<OutgoingAnswer> {
  let url: URL;
  try {
    url = new URL(request.url);
  } catch (err) {
    throw new Unreachable('not a URL', { cause: err });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Unreachable('not an http(s) URL');
  try {
    const res = await fetch(url, {
      method: request.method,
      headers: request.headers,
      ...(request.body === undefined ? {} : { body: request.body }),
      redirect: 'follow',
      signal: AbortSignal.timeout(timeoutMs),
    });
    return {
      status: res.status,
      contentType: res.headers.get('content-type') ?? '',
      body: Buffer.from(await res.arrayBuffer()).toString('utf8'),
    };
  } catch (err) {
    throw new Unreachable('request failed', { cause: err });
  }
}

/** model.ParseSlackLinksToMarkdown: `<url|text>` becomes `[text](url)`. */
export const parseSlackLinks = (text: string): string => text.replace(/<([^<|]+)\|([^>]+)>/g, '[$2]($1)');
