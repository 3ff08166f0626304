import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_COMMAND_LENGTH, parseCommand, STEP_ID } from '../../src/approvals/parse-command.js';

const jobId = fc.integer({ min: 0, max: 999_999_999_999_999 });
const step = fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,63}$/);
const asciiPad = fc.stringMatching(/^[ \t\r\n]{0,3}$/);
const reason = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9 ,.!?'-]{0,60}[A-Za-z0-9.!?]$/);

describe('parseCommand: the exact grammar', () => {
  it('reads every exact APPROVE, surrounded by any ASCII whitespace', () => {
    fc.assert(
      fc.property(jobId, step, asciiPad, asciiPad, (n, s, before, after) => {
        expect(parseCommand(`${before}APPROVE job:${n} step:${s}${after}`)).toEqual({
          kind: 'approve',
          jobId: n,
          step: s,
        });
      }),
    );
  });

  it('reads every exact DENY and REVOKE with their reasons', () => {
    fc.assert(
      fc.property(jobId, step, reason, (n, s, r) => {
        expect(parseCommand(`DENY job:${n} step:${s} ${r}`)).toEqual({
          kind: 'deny',
          jobId: n,
          step: s,
          reason: r,
        });
        expect(parseCommand(`REVOKE job:${n} ${r}`)).toEqual({ kind: 'revoke', jobId: n, reason: r });
      }),
    );
  });

  it('a reason is text: a lone surrogate or a control character anywhere in it is no reason', () => {
    for (const bad of ['\ud800', 'late \udfff', 'ok\ud83d', '\u0001 no', 'no \u0085']) {
      expect(parseCommand(`DENY job:1 step:s ${bad}`)).not.toMatchObject({ kind: 'deny' });
      expect(parseCommand(`REVOKE job:1 ${bad}`)).not.toMatchObject({ kind: 'revoke' });
    }
    // A whole surrogate pair is one character, and welcome.
    expect(parseCommand('DENY job:1 step:s too risky \u{1F600}')).toMatchObject({ kind: 'deny' });
  });

  it('no input other than the exact grammar is ever an approval (arbitrary Unicode)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (text) => {
        const c = parseCommand(text);
        if (c.kind === 'approve') {
          expect(text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '')).toBe(`APPROVE job:${c.jobId} step:${c.step}`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('no input built around a valid phrase is an approval unless it is exactly the phrase', () => {
    const noise = fc.string({ unit: 'binary', maxLength: 6 });
    fc.assert(
      fc.property(jobId, step, noise, noise, noise, (n, s, a, b, c) => {
        const phrase = `APPROVE job:${n} step:${s}`;
        const text = `${a}${phrase.slice(0, 8)}${b}${phrase.slice(8)}${c}`;
        const parsed = parseCommand(text);
        if (parsed.kind === 'approve') {
          expect(text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '')).toBe(
            `APPROVE job:${parsed.jobId} step:${parsed.step}`,
          );
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseCommand: near misses are answered, never counted', () => {
  const mutations: [string, (phrase: string) => string][] = [
    ['lower case', (p) => p.toLowerCase()],
    ['zero-width space inside', (p) => `${p.slice(0, 3)}\u200b${p.slice(3)}`],
    ['zero-width joiner at the end', (p) => `${p}\u200d`],
    ['BOM at the start', (p) => `\ufeff${p}`],
    ['Cyrillic A', (p) => p.replace('A', '\u0410')],
    ['Cyrillic O', (p) => p.replace('O', '\u041e')],
    ['Greek P', (p) => p.replace('P', '\u03a1')],
    ['fullwidth letters', (p) => p.replace('APPROVE', 'ＡＰＰＲＯＶＥ')],
    ['double space', (p) => p.replace(' ', '  ')],
    ['tab between words', (p) => p.replace(' ', '\t')],
    ['non-breaking space', (p) => p.replace(' ', '\u00a0')],
    ['quoted', (p) => `> ${p}`],
    ['inline code', (p) => `\`${p}\``],
    ['code block', (p) => `\`\`\`\n${p}\n\`\`\``],
    ['extra words', (p) => `${p} please`],
    ['second line', (p) => `${p}\nand more`],
    ['leading zero in the job', (p) => p.replace('job:', 'job:0')],
    ['right-to-left override', (p) => `\u202e${p}`],
  ];

  it.each(mutations)('%s', (_name, mutate) => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 99_999 }), step, (n, s) => {
        const c = parseCommand(mutate(`APPROVE job:${n} step:${s}`));
        expect(c.kind).toBe('near_miss');
        if (c.kind === 'near_miss') {
          expect(c.intent).toBe('approve');
          expect(c.expected).toMatch(/^APPROVE job:(\d+|<n>) step:/);
        }
      }),
      { numRuns: 50 },
    );
  });

  it.each([
    ['approve job:42 step:deploy', 'case', 'APPROVE job:42 step:deploy'],
    ['APPROVE  job:42 step:deploy', 'spacing', 'APPROVE job:42 step:deploy'],
    ['\u0410PPROVE job:42 step:deploy', 'lookalike', 'APPROVE job:42 step:deploy'],
    ['APPROVE job:42 step:deploy now', 'extra_text', 'APPROVE job:42 step:deploy'],
    ['APPROVE job:42', 'missing_step', 'APPROVE job:42 step:<step>'],
    ['APPROVE job:abc step:deploy', 'bad_job', 'APPROVE job:<n> step:deploy'],
    ['APPROVE job:042 step:deploy', 'bad_job', 'APPROVE job:42 step:deploy'],
    ['APPROVE job:42 step:-bad', 'bad_step', 'APPROVE job:42 step:<step>'],
    ['> APPROVE job:42 step:deploy', 'quoted', 'APPROVE job:42 step:deploy'],
    ['`APPROVE job:42 step:deploy`', 'code', 'APPROVE job:42 step:deploy'],
    ['DENY job:3 step:s1', 'missing_reason', 'DENY job:3 step:s1 <reason>'],
    ['REVOKE job:3', 'missing_reason', 'REVOKE job:3 <reason>'],
    ['deny job:3 step:s1 too risky', 'case', 'DENY job:3 step:s1 <reason>'],
  ])('%j is a near miss (%s), answered with %j', (text, why, expected) => {
    expect(parseCommand(text)).toMatchObject({ kind: 'near_miss', reason: why, expected });
  });

  it('an oversized message is never a command, even if it starts like one', () => {
    const text = `DENY job:1 step:a ${'x'.repeat(MAX_COMMAND_LENGTH)}`;
    expect(parseCommand(text)).toMatchObject({ kind: 'near_miss', reason: 'too_long' });
    // Chatter is only looked at in a bounded prefix, however long it is.
    expect(parseCommand('a'.repeat(1_000_000))).toEqual({ kind: 'none' });
  });

  it('ordinary conversation is not a command at all', () => {
    for (const text of ['', '   ', 'hello', 'I approve of this plan', 'Can someone APPROVE this?', 'lgtm']) {
      expect(parseCommand(text)).toEqual({ kind: 'none' });
    }
  });

  it('step ids follow SPEC section 2', () => {
    expect(STEP_ID.test('deploy-2.prod_x')).toBe(true);
    expect(STEP_ID.test('Deploy')).toBe(false);
    expect(STEP_ID.test('a'.repeat(65))).toBe(false);
  });
});

describe('parseCommand: CONFIRM (the requester an agent named)', () => {
  it('reads every exact CONFIRM, and nothing built around it', () => {
    fc.assert(
      fc.property(jobId, asciiPad, asciiPad, (j, a, b) => {
        expect(parseCommand(`${a}CONFIRM job:${j}${b}`)).toEqual({ kind: 'confirm', jobId: j });
      }),
    );
    fc.assert(
      fc.property(
        jobId,
        // Trailing ASCII whitespace is trimmed (as for APPROVE): anything else after the phrase.
        fc.string({ minLength: 1, maxLength: 20 }).filter((e) => /[^ \t\r\n]/.test(e)),
        (j, extra) => {
          const text = `CONFIRM job:${j} ${extra}`;
          expect(parseCommand(text).kind).not.toBe('confirm');
        },
      ),
    );
  });

  it('answers near misses with the exact phrase', () => {
    for (const [text, reason] of [
      ['confirm job:7', 'case'],
      ['CONFIRM  job:7', 'spacing'],
      ['СONFIRM job:7', 'lookalike'],
      ['> CONFIRM job:7', 'quoted'],
      ['`CONFIRM job:7`', 'code'],
      ['CONFIRM job:7 yes it is mine', 'extra_text'],
      ['confirmed job:7', 'malformed'],
    ] as const) {
      expect(parseCommand(text), text).toEqual({
        kind: 'near_miss',
        intent: 'confirm',
        reason,
        expected: 'CONFIRM job:7',
      });
    }
    expect(parseCommand('CONFIRM job:07')).toMatchObject({ kind: 'near_miss', reason: 'bad_job' });
  });
});
