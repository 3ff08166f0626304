import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/crypto/jcs.js';
import { planHash, planShapeProblems } from '../../src/jobs/plan.js';
import { stepIdFor, stepInput, toolCallStep, type ToolInput } from '../../src/mcp/tool-call-step.js';

function stepOf(tool: string, input: ToolInput) {
  const r = toolCallStep(tool, input);
  if (!r.ok) throw new Error(r.problem);
  return r.step;
}

const field = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_-]{0,10}$/).filter((k) => k !== '__proto__');
const json = fc.jsonValue({ maxDepth: 3 });

describe('a tool call as a plan step', () => {
  it('carries plain fields as themselves', () => {
    const step = stepOf('Bash', { command: 'ls -la', timeout: 120000, run_in_background: false });
    expect(step).toEqual({
      id: 'bash',
      tool: 'Bash',
      args: { command: 'ls -la', timeout: 120000, run_in_background: false },
      summary: 'Let the coding agent call Bash with exactly these arguments',
    });
    expect(planShapeProblems([step])).toEqual([]);
  });

  it('carries text with line breaks, numbers that are not safe integers, null, arrays and objects as JSON', () => {
    const input = {
      file_path: '/src/a.ts',
      old_string: 'a\nb',
      new_string: 'c\td\u202e',
      ratio: 0.5,
      big: 2 ** 60,
      nothing: null,
      edits: [{ old: 'x', new: 'y' }],
    };
    const step = stepOf('Edit', input);
    expect(step.args).toEqual({
      file_path: '/src/a.ts',
      'old_string.json': '"a\\nb"',
      'new_string.json': '"c\\td\\u202e"',
      'ratio.json': '0.5',
      'big.json': '1152921504606847000',
      'nothing.json': 'null',
      'edits.json': '[{"old":"x","new":"y"}]',
    });
    expect(planShapeProblems([step])).toEqual([]);
    expect(canonicalJson(stepInput(step.args))).toBe(canonicalJson(input));
  });

  it('splits long values into numbered pieces, never inside a surrogate pair', () => {
    const content = `${'x'.repeat(3998)}😀${'y'.repeat(5000)}`;
    const step = stepOf('Write', { file_path: 'a.txt', content: `${content}\n` });
    const keys = Object.keys(step.args);
    expect(keys).toEqual(['file_path', 'content.json.1', 'content.json.2', 'content.json.3']);
    for (const k of keys.slice(1)) expect(String(step.args[k]).length).toBeLessThanOrEqual(4000);
    expect(planShapeProblems([step])).toEqual([]);
    expect(stepInput(step.args)).toEqual({ file_path: 'a.txt', content: `${content}\n` });
  });

  it('gives back exactly the input it was made from, and different inputs make different plans', () => {
    fc.assert(
      fc.property(fc.dictionary(field, json, { maxKeys: 8 }), (input) => {
        const step = stepOf('mcp__db__query', input);
        expect(planShapeProblems([step])).toEqual([]);
        expect(canonicalJson(stepInput(step.args))).toBe(canonicalJson(input));
      }),
    );
    fc.assert(
      fc.property(
        fc.dictionary(field, json, { maxKeys: 4 }),
        fc.dictionary(field, json, { maxKeys: 4 }),
        (a, b) => {
          fc.pre(canonicalJson(a) !== canonicalJson(b));
          expect(planHash([stepOf('Bash', a)])).not.toBe(planHash([stepOf('Bash', b)]));
        },
      ),
    );
  });

  it('carries negative zero as the 0 that JSON and the plan hash make of it', () => {
    const step = stepOf('Bash', { n: -0, m: [-0] });
    expect(Object.is(step.args.n, 0)).toBe(true);
    expect(step.args).toEqual({ n: 0, 'm.json': '[0]' });
    expect(planHash([step])).toBe(planHash([stepOf('Bash', { n: 0, m: [0] })]));
    expect(stepInput(step.args)).toEqual({ n: 0, m: [0] });
    expect(() => stepInput({ 'n.json': '-0' })).toThrow(/need not be/);
  });

  it('keeps a string that looks like JSON apart from the value it spells', () => {
    const asText = stepOf('Bash', { command: '["rm","-rf"]' });
    const asArray = stepOf('Bash', { command: ['rm', '-rf'] });
    expect(planHash([asText])).not.toBe(planHash([asArray]));
    expect(stepInput(asText.args)).toEqual({ command: '["rm","-rf"]' });
    expect(stepInput(asArray.args)).toEqual({ command: ['rm', '-rf'] });
  });

  it('refuses what it cannot carry, saying why', () => {
    expect(toolCallStep('rm -rf', {})).toMatchObject({ ok: false, problem: /tool name/ });
    expect(toolCallStep('', {})).toMatchObject({ ok: false });
    expect(toolCallStep('x'.repeat(129), {})).toMatchObject({ ok: false });
    expect(toolCallStep('Bash', { 'a.json': 'x' })).toMatchObject({ ok: false, problem: /field name/ });
    expect(toolCallStep('Bash', { 'a b': 'x' })).toMatchObject({ ok: false, problem: /field name/ });
    expect(toolCallStep('Bash', JSON.parse('{"__proto__":{"x":1}}') as ToolInput)).toMatchObject({
      ok: false,
    });
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`f${i}`, i]));
    expect(toolCallStep('Bash', many)).toMatchObject({ ok: false, problem: /at most 32/ });
    expect(toolCallStep('Write', { content: 'z\n'.repeat(40_000) })).toMatchObject({
      ok: false,
      problem: /too large/,
    });
  });

  it('reads back only args it could have made', () => {
    expect(() => stepInput({ 'a.json': '1' })).toThrow(/need not be/);
    expect(() => stepInput({ 'a.json': '"plain"' })).toThrow(/need not be/);
    expect(() => stepInput({ a: 'x', 'a.json': '[1]' })).toThrow(/twice/);
    expect(() => stepInput({ 'a.json': '[1]', 'a.json.1': '[1' })).toThrow(/twice/);
    expect(() => stepInput({ 'a.json.1': '[1', 'a.json.3': ']' })).toThrow(/missing/);
    expect(() => stepInput({ 'a.json.1': '[1]' })).toThrow(/missing/);
    expect(() => stepInput({ 'a.json': '[1' })).toThrow();
    expect(() => stepInput({ 'a.json': 5 })).toThrow(/JSON text/);
    expect(() => stepInput({ 'a b': 'x' })).toThrow(/not a carried field/);
    expect(() => stepInput({ a: 'x\ny' })).toThrow(/not a carried field/);
    expect(() => stepInput({ '__proto__.json': '{"x":1}' })).toThrow(/not a carried field/);
  });

  it('names the step after the tool, as approvers type it', () => {
    expect(stepIdFor('Bash')).toBe('bash');
    expect(stepIdFor('mcp__github__create_issue')).toBe('mcp__github__create_issue');
    expect(stepIdFor('mcp:crm/search')).toBe('mcp-crm-search');
    expect(stepIdFor('__x')).toBe('x');
    expect(stepIdFor('___')).toBe('call');
    expect(stepIdFor('A'.repeat(128))).toHaveLength(64);
  });
});
