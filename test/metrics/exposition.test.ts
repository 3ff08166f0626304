import { describe, expect, it } from 'vitest';
import { parseExposition, Scrape } from './exposition.js';

// The tests of /metrics read it with this parser: it must refuse what Prometheus would not read.
describe('the exposition parser of the tests', () => {
  const good = [
    '# HELP a_total Things, with "quotes" and \\\\ in help.',
    '# TYPE a_total counter',
    'a_total{code="ERR_X",source="chat"} 3',
    'a_total{code="esc\\"aped\\\\\\n",source="api"} 1.5e3',
    '# TYPE h_seconds histogram',
    'h_seconds_bucket{le="0.1"} 1',
    'h_seconds_bucket{le="+Inf"} 2',
    'h_seconds_sum 0.25',
    'h_seconds_count 2',
    '# TYPE g gauge',
    'g Nan',
    '',
  ].join('\n');

  it('reads families, types, labels (with escapes) and special values', () => {
    const f = parseExposition(good);
    expect(f.get('a_total')).toMatchObject({
      type: 'counter',
      help: 'Things, with "quotes" and \\\\ in help.',
    });
    expect(f.get('a_total')!.samples[1]).toEqual({
      name: 'a_total',
      labels: { code: 'esc"aped\\\n', source: 'api' },
      value: 1500,
    });
    const m = new Scrape(good);
    expect(m.value('h_seconds_bucket', { le: '+Inf' })).toBe(2);
    expect(m.value('h_seconds_count')).toBe(2);
    expect(m.value('g')).toBeNaN();
    expect(m.find('a_total', { code: 'nope' })).toBeUndefined();
    expect(m.count('a_total', { code: 'nope' })).toBe(0);
    expect(() => m.value('a_total')).toThrow('2 samples');
    expect(() => m.count('missing_total')).toThrow('no metric family');
  });

  it.each([
    ['a sample of an undeclared family', 'x 1\n'],
    ['a malformed value', '# TYPE x gauge\nx one\n'],
    ['a malformed label', '# TYPE x gauge\nx{a=1} 1\n'],
    ['an unterminated label', '# TYPE x gauge\nx{a="1} 1\n'],
    ['a label given twice', '# TYPE x gauge\nx{a="1",a="2"} 1\n'],
    ['the same series twice', '# TYPE x gauge\nx{a="1"} 1\nx{a="1"} 2\n'],
    ['TYPE after samples', '# TYPE x gauge\nx 1\n# TYPE x counter\n'],
    ['no final newline', '# TYPE x gauge\nx 1'],
    ['a histogram suffix on a gauge', '# TYPE x gauge\nx_bucket{le="1"} 1\n'],
  ])('refuses %s', (_, text) => {
    expect(() => parseExposition(text)).toThrow();
  });
});
