import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstDuplicateKey } from '../../src/proofs/verify/duplicate-keys.js';

/** What JSON.parse alone cannot tell: the text repeats a key, and the value it keeps is the last. */
describe('firstDuplicateKey', () => {
  it.each<[string, string, string, string]>([
    ['at the top level', '{"a":1,"b":2,"a":3}', 'a', '(top level)'],
    ['in a nested object', '{"payload":{"x":{"k":1,"k":2}}}', 'k', 'payload.x'],
    ['in an array element', '{"list":[{"k":1},{"k":1,"j":2,"k":3}]}', 'k', 'list[1]'],
    ['in an object inside arrays inside arrays', '[[1,[{}]],[[{"z":0,"z":0}]]]', 'z', '[1][0][0]'],
    [
      'spelled with an escape the second time',
      '{"agent_did":"a","agent_d\\u0069d":"b"}',
      'agent_did',
      '(top level)',
    ],
    ['spelled with escapes both times', '{"\\u0022q":1,"\\"q":2}', '"q', '(top level)'],
    ['__proto__, twice', '{"__proto__":1,"__proto__":2}', '__proto__', '(top level)'],
    ['the empty key', '{"":1,"":2}', '', '(top level)'],
    ['under an odd key', '{"odd key":{"a":1,"a":1}}', 'a', '["odd key"]'],
  ])('finds a key repeated %s', (_where, text, key, path) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(firstDuplicateKey(text)).toEqual({ key, path });
  });

  it.each<[string, string]>([
    ['the same key in sibling objects', '{"a":{"k":1},"b":{"k":2},"c":[{"k":3},{"k":4}]}'],
    ['a key and an equal string value', '{"k":"k","j":["k","k"]}'],
    ['keys that differ only after decoding', '{"a\\\\":1,"a":2,"a\\"":3}'],
    [
      'strings holding braces, quotes, colons and commas',
      '{"x":"{\\"x\\":1,\\"x\\":2}","y":"]},\\\\","z":"\\\\"}',
    ],
    [
      'numbers, literals and whitespace',
      ' { "n" : -1.5e+3 , "t" : true , "f" : false , "z" : null , "e" : [ ] , "o" : { } } ',
    ],
    ['a key reused after its object closed', '{"a":{"a":{"a":1}},"b":1}'],
  ])('finds none in %s', (_what, text) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(firstDuplicateKey(text)).toBeNull();
  });

  it('finds none in any JSON.stringify output, and finds the key after one is repeated', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string(), (value, key) => {
        const text = JSON.stringify(value);
        expect(firstDuplicateKey(text)).toBeNull();
        const doubled = `{${JSON.stringify(key)}:1,"pad":${text},${JSON.stringify(key)}:2}`;
        expect(firstDuplicateKey(doubled)).toEqual({ key, path: '(top level)' });
      }),
    );
  });

  it('scans JSON nested 200 000 deep without a stack overflow', () => {
    const DEEP = 200_000;
    expect(firstDuplicateKey(`${'['.repeat(DEEP)}${']'.repeat(DEEP)}`)).toBeNull();
    const deepObject = `${'{"a":'.repeat(DEEP)}{"k":1,"k":2}${'}'.repeat(DEEP)}`;
    const found = firstDuplicateKey(deepObject);
    expect(found?.key).toBe('k');
    expect(found?.path).toBe(`${'a.'.repeat(99)}a…`);
  });
});
