/**
 * A strict reader of Prometheus' text exposition format (0.0.4), for tests: every line must be
 * a comment, HELP, TYPE or a well-formed sample of a family declared before it, or parsing
 * fails. Tests then look series up by name and labels instead of matching text loosely.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
const LABEL_PAIR = new RegExp(`^(${LABEL})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"(,|$)`);

// As Prometheus reads values (Go's ParseFloat): NaN and Inf in any case; prom-client writes `Nan`.
function parseValue(v: string, line: string): number {
  if (/^\+?inf(inity)?$/i.test(v)) return Infinity;
  if (/^-inf(inity)?$/i.test(v)) return -Infinity;
  if (/^nan$/i.test(v)) return NaN;
  if (!/^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(v)) throw new Error(`bad sample value in: ${line}`);
  return Number(v);
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const m = LABEL_PAIR.exec(rest);
    if (!m) throw new Error(`bad labels in: ${line}`);
    if (m[1]! in labels) throw new Error(`label ${m[1]} twice in: ${line}`);
    labels[m[1]!] = m[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
    rest = rest.slice(m[0].length);
  }
  return labels;
}

/** The family a sample belongs to: histograms and summaries add suffixes to their name. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const exact = families.get(name);
  if (exact) return exact;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
  }
  return undefined;
}

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const help = /^# HELP (\S+) (.*)$/.exec(line);
    if (help) {
      const f = families.get(help[1]!);
      if (f?.help) throw new Error(`HELP twice for ${help[1]}`);
      if (f) f.help = help[2]!;
      else families.set(help[1]!, { name: help[1]!, type: 'untyped', help: help[2]!, samples: [] });
      continue;
    }
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      const f = families.get(type[1]!);
      if (f && f.samples.length > 0) throw new Error(`TYPE after samples for ${type[1]}`);
      if (f) f.type = type[2] as Family['type'];
      else families.set(type[1]!, { name: type[1]!, type: type[2] as Family['type'], help: '', samples: [] });
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const family = familyOf(m[1]!, families);
    if (!family) throw new Error(`sample of an undeclared family: ${line}`);
    const labels = parseLabels(m[2] ?? '', line);
    const key = `${m[1]}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`the same series twice: ${line}`);
    seen.add(key);
    family.samples.push({ name: m[1]!, labels, value: parseValue(m[3]!, line) });
  }
  return families;
}

/** Parsed metrics with lookups that fail loudly when a series is not there. */
export class Scrape {
  readonly families: Map<string, Family>;

  constructor(readonly text: string) {
    this.families = parseExposition(text);
  }

  has(family: string): boolean {
    return this.families.has(family);
  }

  family(name: string): Family {
    const f = this.families.get(name);
    if (!f) throw new Error(`no metric family ${name} in the scrape`);
    return f;
  }

  /** The value of the one sample named `name` whose labels include `labels`; undefined if none. */
  find(name: string, labels: Record<string, string> = {}): number | undefined {
    const family = familyOf(name, this.families);
    if (!family) return undefined;
    const hits = family.samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
    if (hits.length > 1) throw new Error(`${hits.length} samples of ${name} match ${JSON.stringify(labels)}`);
    return hits[0]?.value;
  }

  /** Like `find`, but the sample must exist. */
  value(name: string, labels: Record<string, string> = {}): number {
    const v = this.find(name, labels);
    if (v === undefined) throw new Error(`no sample ${name}${JSON.stringify(labels)} in the scrape`);
    return v;
  }

  /** A counter's value, 0 when its labelled series was never incremented (so not exposed yet). */
  count(name: string, labels: Record<string, string> = {}): number {
    if (!this.has(name.replace(/_(count|sum|bucket)$/, '')) && !this.has(name))
      throw new Error(`no metric family for ${name} in the scrape`);
    return this.find(name, labels) ?? 0;
  }
}
