import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the model says next: call one tool, or answer in text. */
export type ModelTurn = { tool: string; args: Record<string, unknown> } | { text: string };

export interface ScriptedModel {
  /** `http://127.0.0.1:<port>/v1`: an OpenAI-compatible Chat Completions base URL. */
  baseUrl: string;
  /** Turns to play, in order, one per request; a request with none left gets "done". */
  script(...turns: ModelTurn[]): void;
  /** The tool results the agent sent back, in order (what the model "saw"). */
  toolResults(): string[];
  /** Tool names offered in the last request. */
  offeredTools(): string[];
  close(): Promise<void>;
}

interface ChatRequest {
  model: string;
  stream?: boolean;
  messages: { role: string; content?: unknown }[];
  tools?: { function?: { name?: string } }[];
}

/**
 * A scripted stand-in for a model provider, speaking the streamed Chat Completions protocol an
 * OpenClaw custom provider (`api: "openai-completions"`) uses. It lets a test drive a real
 * OpenClaw agent turn (model → tool call → hooks → tool → model) with no model behind it.
 */
export async function startScriptedModel(): Promise<ScriptedModel> {
  const turns: ModelTurn[] = [];
  const results: string[] = [];
  let offered: string[] = [];
  let n = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}');
        return;
      }
      const chat = JSON.parse(body) as ChatRequest;
      offered = (chat.tools ?? []).map((t) => t.function?.name ?? '');
      const last = chat.messages.at(-1);
      if (last?.role === 'tool')
        results.push(typeof last.content === 'string' ? last.content : JSON.stringify(last.content));
      n += 1;
      const base = { id: `chatcmpl-${n}`, object: 'chat.completion.chunk', created: 0, model: chat.model };
      const turn = turns.shift() ?? { text: 'done' };
      const deltas =
        'tool' in turn
          ? [
              {
                delta: {
                  role: 'assistant',
                  tool_calls: [
                    {
                      index: 0,
                      id: `call_${n}`,
                      type: 'function',
                      function: { name: turn.tool, arguments: JSON.stringify(turn.args) },
                    },
                  ],
                },
                finish_reason: null,
              },
              { delta: {}, finish_reason: 'tool_calls' },
            ]
          : [
              { delta: { role: 'assistant', content: turn.text }, finish_reason: null },
              { delta: {}, finish_reason: 'stop' },
            ];
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      for (const d of deltas)
        res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, ...d }] })}\n\n`);
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    script: (...t) => void turns.push(...t),
    toolResults: () => [...results],
    offeredTools: () => offered,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
