import { canonicalJson } from '../../crypto/jcs.js';
import { fail, isRecord, type Passed, quote } from './check.js';

/**
 * Claw Bureau's causal rules over the spans gateway receipts declare in their bindings
 * (`span_id`, `parent_span_id`, `tool_span_id`, `phase`, `attribution_confidence`, each also
 * in camel case), in its default "enforce" connectivity mode. Every failure is
 * CAUSAL_BINDING_INVALID here, with Claw Bureau's precise code as `cbReason`.
 */

const PHASES = ['setup', 'planning', 'reasoning', 'execution', 'observation', 'reflection', 'teardown'];
/** Which phase may follow which, from a parent (or tool) span to its child. */
const NEXT_PHASES: Record<string, readonly string[]> = {
  setup: ['setup', 'planning'],
  planning: ['planning', 'reasoning', 'execution'],
  reasoning: ['reasoning', 'execution', 'observation'],
  execution: ['execution', 'observation', 'reflection', 'teardown'],
  observation: ['observation', 'reflection', 'teardown'],
  reflection: ['reflection', 'teardown'],
  teardown: ['teardown'],
};

const SPAN_FIELDS = [
  'span_id',
  'spanId',
  'parent_span_id',
  'parentSpanId',
  'tool_span_id',
  'toolSpanId',
  'phase',
  'attribution_confidence',
  'attributionConfidence',
];

function causal(code: string, message: string): never {
  return fail('CAUSAL_BINDING_INVALID', code, message);
}
const has = (o: Record<string, unknown>, key: string) => Object.prototype.hasOwnProperty.call(o, key);

/** A span reference read from snake or camel case, trimmed; both given must agree. */
function identifier(
  binding: Record<string, unknown>,
  snake: string,
  camel: string,
  where: string,
): string | undefined {
  const read = (key: string): string | undefined => {
    if (!has(binding, key)) return undefined;
    const raw = binding[key];
    if (typeof raw !== 'string' || raw.trim().length === 0)
      causal('CAUSAL_BINDING_NORMALIZATION_FAILED', `${where}.${key} must be a non-empty string`);
    return raw.trim();
  };
  const a = read(snake);
  const b = read(camel);
  if (a !== undefined && b !== undefined && a !== b)
    causal('CAUSAL_BINDING_FIELD_CONFLICT', `${where}.${snake} and ${camel} disagree`);
  return a ?? b;
}

function confidence(binding: Record<string, unknown>, where: string): number | undefined {
  const read = (key: string): number | undefined => {
    if (!has(binding, key)) return undefined;
    const raw = binding[key];
    if (typeof raw !== 'number' || !Number.isFinite(raw))
      causal('CAUSAL_BINDING_NORMALIZATION_FAILED', `${where}.${key} must be a finite number`);
    return raw;
  };
  const a = read('attribution_confidence');
  const b = read('attributionConfidence');
  if (a !== undefined && b !== undefined && !Object.is(a, b))
    causal(
      'CAUSAL_BINDING_FIELD_CONFLICT',
      `${where}.attribution_confidence and attributionConfidence disagree`,
    );
  return a ?? b;
}

/** Where a receipt points in the span graph. */
export interface Anchor {
  spanId?: string;
  parentSpanId?: string;
  toolSpanId?: string;
}

export function anchorOf(binding: Record<string, unknown>, where: string): Anchor {
  return {
    spanId: identifier(binding, 'span_id', 'spanId', where),
    parentSpanId: identifier(binding, 'parent_span_id', 'parentSpanId', where),
    toolSpanId: identifier(binding, 'tool_span_id', 'toolSpanId', where),
  };
}

/** The span a support receipt (approval, side effect) hangs from: tool span, else parent, else its own. */
export const anchorSpan = (a: Anchor): string | undefined => a.toolSpanId ?? a.parentSpanId ?? a.spanId;

interface SpanEntry extends Anchor {
  where: string;
  phase?: unknown;
  confidence?: number;
  /** The receipt payload's timestamp, else its envelope's issued_at, in ms. */
  at?: number;
}

interface GatewayEnvelope {
  issued_at: string;
  payload: { receipt_id: string; timestamp: string; binding?: Record<string, unknown> };
}

/** The span entries of gateway receipts whose binding says anything causal. */
function spanEntries(receipts: GatewayEnvelope[]): SpanEntry[] {
  const out: SpanEntry[] = [];
  for (const [i, r] of receipts.entries()) {
    const binding = r.payload.binding;
    if (!isRecord(binding) || !SPAN_FIELDS.some((f) => has(binding, f))) continue;
    const where = `receipts[${i}].payload.binding`;
    const timestamp = Date.parse(r.payload.timestamp);
    const issuedAt = Date.parse(r.issued_at);
    if (Number.isNaN(timestamp) || Number.isNaN(issuedAt))
      causal('CAUSAL_CLOCK_CONTRADICTION', `receipts[${i}] has a timestamp that is not a date`);
    if (timestamp > issuedAt)
      causal(
        'CAUSAL_CLOCK_CONTRADICTION',
        `receipts[${i}].payload.timestamp is after its envelope's issued_at`,
      );
    out.push({
      where,
      ...anchorOf(binding, where),
      phase: binding.phase,
      confidence: confidence(binding, where),
      at: timestamp,
    });
  }
  return out;
}

/** A receipt id used twice must name the same receipt (Claw Bureau: a divergent reuse is a replay). */
function checkReplay(receipts: GatewayEnvelope[]): void {
  const seen = new Map<string, string>();
  for (const [i, r] of receipts.entries()) {
    const id = r.payload.receipt_id;
    const text = canonicalJson(r.payload);
    const before = seen.get(id);
    if (before !== undefined && before !== text)
      fail(
        'RECEIPT_REPLAYED',
        'CAUSAL_RECEIPT_REPLAY_DETECTED',
        `receipts[${i}] reuses receipt_id ${quote(id)} for another payload`,
      );
    seen.set(id, text);
  }
}

/** Each span's facts must agree wherever the span is declared again. */
function checkSpanReuse(entries: SpanEntry[]): Map<string, SpanEntry> {
  const first = new Map<string, SpanEntry>();
  for (const e of entries) {
    if (e.spanId === undefined) continue;
    const prev = first.get(e.spanId);
    if (!prev) {
      first.set(e.spanId, e);
      continue;
    }
    const differs = <T>(a: T | undefined, b: T | undefined) =>
      a !== undefined && b !== undefined && !Object.is(a, b);
    if (differs(prev.at, e.at))
      causal('CAUSAL_CLOCK_CONTRADICTION', `span ${quote(e.spanId)} is declared at two different times`);
    const conflicts = [
      differs(prev.parentSpanId, e.parentSpanId) && 'parent_span_id',
      differs(prev.toolSpanId, e.toolSpanId) && 'tool_span_id',
      differs(
        typeof prev.phase === 'string' ? prev.phase : undefined,
        typeof e.phase === 'string' ? e.phase : undefined,
      ) && 'phase',
      differs(prev.confidence, e.confidence) && 'attribution_confidence',
    ].filter((c): c is string => c !== false);
    if (conflicts.length > 0)
      causal(
        'CAUSAL_SPAN_REUSE_CONFLICT',
        `span ${quote(e.spanId)} is declared again with another ${conflicts.join(', ')}`,
      );
  }
  return first;
}

function checkEdges(entries: SpanEntry[], known: ReadonlySet<string>): void {
  for (const e of entries) {
    if (e.phase !== undefined && (typeof e.phase !== 'string' || !PHASES.includes(e.phase)))
      causal('CAUSAL_PHASE_INVALID', `${e.where}.phase is not a known phase`);
    if (e.confidence !== undefined && (e.confidence < 0 || e.confidence > 1))
      causal('CAUSAL_CONFIDENCE_OUT_OF_RANGE', `${e.where}.attribution_confidence is outside [0, 1]`);
    for (const [ref, field] of [
      [e.parentSpanId, 'parent_span_id'],
      [e.toolSpanId, 'tool_span_id'],
    ] as const) {
      if (ref !== undefined && !known.has(ref))
        causal(
          'CAUSAL_REFERENCE_DANGLING',
          `${e.where}.${field} names span ${quote(ref)}, which no receipt declares`,
        );
    }
  }
}

/** A child span is not earlier than its parent (or tool) span, and its phase may follow the parent's. */
function checkOrder(spans: ReadonlyMap<string, SpanEntry>): void {
  for (const [id, span] of spans) {
    for (const parentId of [span.parentSpanId, span.toolSpanId]) {
      const parent = parentId === undefined ? undefined : spans.get(parentId);
      if (!parent) continue;
      if (span.at !== undefined && parent.at !== undefined && span.at < parent.at)
        causal(
          'CAUSAL_CLOCK_CONTRADICTION',
          `span ${quote(id)} is earlier than span ${quote(parentId)} it follows`,
        );
      if (
        typeof span.phase === 'string' &&
        typeof parent.phase === 'string' &&
        !(NEXT_PHASES[parent.phase] ?? []).includes(span.phase)
      )
        causal(
          'CAUSAL_PHASE_TRANSITION_INVALID',
          `span ${quote(id)} goes from phase ${parent.phase} to ${span.phase}`,
        );
    }
  }
}

function checkAcyclic(entries: SpanEntry[]): void {
  const parentOf = new Map<string, string>();
  for (const e of entries)
    if (e.spanId !== undefined && e.parentSpanId !== undefined && !parentOf.has(e.spanId))
      parentOf.set(e.spanId, e.parentSpanId);
  const done = new Set<string>();
  for (const start of parentOf.keys()) {
    const path = new Set<string>();
    for (let at: string | undefined = start; at !== undefined && !done.has(at); at = parentOf.get(at)) {
      if (path.has(at)) causal('CAUSAL_CYCLE_DETECTED', `span ${quote(at)} is its own ancestor`);
      path.add(at);
    }
    for (const id of path) done.add(id);
  }
}

/** Confidence may not exceed what the evidence supports: 1 with a lineage, 0.5 for a lone span, else 0. */
function checkConfidence(entries: SpanEntry[]): void {
  const referenced = new Set<string>();
  for (const e of entries) {
    if (e.parentSpanId !== undefined) referenced.add(e.parentSpanId);
    if (e.toolSpanId !== undefined) referenced.add(e.toolSpanId);
  }
  for (const e of entries) {
    if (e.confidence === undefined) continue;
    const direct =
      e.parentSpanId !== undefined ||
      e.toolSpanId !== undefined ||
      (e.spanId !== undefined && referenced.has(e.spanId));
    const max = direct ? 1 : e.spanId !== undefined ? 0.5 : 0;
    if (e.confidence > max)
      causal(
        'CAUSAL_CONFIDENCE_EVIDENCE_INCONSISTENT',
        `${e.where}.attribution_confidence exceeds ${max} for its evidence`,
      );
  }
}

/** Enforce mode: at least one root, every span reaches one, and all spans form one graph. */
function checkConnected(spans: ReadonlyMap<string, SpanEntry>): void {
  if (spans.size === 0) return;
  const roots = [...spans].filter(([, s]) => s.parentSpanId === undefined && s.toolSpanId === undefined);
  if (roots.length === 0) causal('CAUSAL_GRAPH_DISCONNECTED', 'the span graph has no root');
  const reaches = new Map<string, boolean>(roots.map(([id]) => [id, true]));
  const reachesRoot = (id: string, visiting: ReadonlySet<string>): boolean => {
    const known = reaches.get(id);
    if (known !== undefined) return known;
    const span = spans.get(id);
    if (!span || visiting.has(id)) return false;
    const next = new Set(visiting).add(id);
    const ok =
      (span.parentSpanId !== undefined && reachesRoot(span.parentSpanId, next)) ||
      (span.toolSpanId !== undefined && reachesRoot(span.toolSpanId, next));
    reaches.set(id, ok);
    return ok;
  };
  for (const id of spans.keys())
    if (!reachesRoot(id, new Set()))
      causal('CAUSAL_GRAPH_DISCONNECTED', `span ${quote(id)} does not lead to a root`);
  const neighbours = new Map<string, Set<string>>([...spans.keys()].map((id) => [id, new Set<string>()]));
  for (const [id, span] of spans) {
    for (const other of [span.parentSpanId, span.toolSpanId]) {
      if (other === undefined || !spans.has(other)) continue;
      neighbours.get(id)!.add(other);
      neighbours.get(other)!.add(id);
    }
  }
  const seen = new Set<string>();
  const stack = [spans.keys().next().value as string];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const n of neighbours.get(id)!) stack.push(n);
  }
  if (seen.size !== spans.size)
    causal('CAUSAL_GRAPH_DISCONNECTED', 'the span graph falls apart into several pieces');
}

/**
 * Receipt ids not replayed, then the span graph of the gateway receipts: bindings normalize,
 * a reused span keeps its facts, references resolve, time and phase run forward, no cycles,
 * confidence matches evidence, one connected graph. Returns the declared spans.
 */
export function checkCausalGraph(receipts: unknown[] | undefined): { value: ReadonlySet<string> } & Passed {
  const list = (receipts ?? []) as GatewayEnvelope[];
  checkReplay(list);
  const entries = spanEntries(list);
  const known = new Set(entries.flatMap((e) => (e.spanId === undefined ? [] : [e.spanId])));
  checkEdges(entries, known);
  const spans = checkSpanReuse(entries);
  checkOrder(spans);
  checkAcyclic(entries);
  checkConfidence(entries);
  checkConnected(spans);
  return {
    value: known,
    message:
      known.size === 0
        ? 'no receipt ids replayed; no gateway receipt declares a causal span'
        : `no receipt ids replayed; ${known.size} spans declared by gateway receipts form one connected graph`,
  };
}

/** Enforce mode: every side-effect receipt hangs from a span some gateway receipt declares. */
export function checkSideEffectAnchoring(
  receipts: unknown[] | undefined,
  known: ReadonlySet<string>,
): Passed {
  const list = (receipts ?? []) as { binding?: unknown }[];
  for (const [i, r] of list.entries()) {
    const where = `side_effect_receipts[${i}].binding`;
    const span = isRecord(r.binding) ? anchorSpan(anchorOf(r.binding, where)) : undefined;
    if (span === undefined || !known.has(span))
      fail(
        'SIDE_EFFECT_NOT_ANCHORED',
        'CAUSAL_SIDE_EFFECT_ORPHANED',
        `side_effect_receipts[${i}] hangs from no span a gateway receipt declares`,
      );
  }
  return {
    message:
      list.length === 0
        ? 'no side-effect receipts to anchor'
        : `${list.length} side-effect receipts hang from declared spans`,
  };
}
