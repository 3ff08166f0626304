import { createHash } from 'node:crypto';
import { canonicalize } from 'json-canonicalize';
import { describe, expect, it } from 'vitest';
import { jcsHashB64u, sha256B64u } from '../../src/crypto/hash.js';
import { canonicalJson } from '../../src/crypto/jcs.js';

/** A double from its IEEE-754 bit pattern (big-endian hex), so no decimal literal is involved. */
function fromBits(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

const utf8Hex = (text: string): string => Buffer.from(text, 'utf8').toString('hex');
const squash = (hex: string): string => hex.trim().split(/\s+/).join('');

// RFC 8785 Appendix B: IEEE-754 bit pattern -> JCS serialization.
const APPENDIX_B: [bits: string, expected: string][] = [
  ['0000000000000000', '0'],
  ['8000000000000000', '0'], // minus zero
  ['0000000000000001', '5e-324'],
  ['8000000000000001', '-5e-324'],
  ['7fefffffffffffff', '1.7976931348623157e+308'],
  ['ffefffffffffffff', '-1.7976931348623157e+308'],
  ['4340000000000000', '9007199254740992'],
  ['c340000000000000', '-9007199254740992'],
  ['4430000000000000', '295147905179352830000'],
  ['44b52d02c7e14af5', '9.999999999999997e+22'],
  ['44b52d02c7e14af6', '1e+23'],
  ['44b52d02c7e14af7', '1.0000000000000001e+23'],
  ['444b1ae4d6e2ef4e', '999999999999999700000'],
  ['444b1ae4d6e2ef4f', '999999999999999900000'],
  ['444b1ae4d6e2ef50', '1e+21'],
  ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
  ['3eb0c6f7a0b5ed8d', '0.000001'],
  ['41b3de4355555553', '333333333.3333332'],
  ['41b3de4355555554', '333333333.33333325'],
  ['41b3de4355555555', '333333333.3333333'],
  ['41b3de4355555556', '333333333.3333334'],
  ['41b3de4355555557', '333333333.33333343'],
  ['becbf647612f3696', '-0.0000033333333333333333'],
  ['43143ff3c1cb0959', '1424953923781206.2'], // round to even
];

describe('RFC 8785 Appendix B: number serialization', () => {
  it.each(APPENDIX_B)('%s serializes as %s', (bits, expected) => {
    const value = fromBits(bits);
    // Guards the table itself: JCS numbers are ECMAScript Number::toString.
    expect(String(value)).toBe(expected);
    expect(canonicalJson(value)).toBe(expected);
    expect(canonicalJson([value])).toBe(`[${expected}]`);
    expect(canonicalJson({ n: value })).toBe(`{"n":${expected}}`);
  });

  it('minus zero really is a negative zero before serialization', () => {
    expect(Object.is(fromBits('8000000000000000'), -0)).toBe(true);
  });

  it.each([
    ['NaN', '7fffffffffffffff'],
    ['Infinity', '7ff0000000000000'],
    ['-Infinity', 'fff0000000000000'],
  ])('%s (%s) is an error, at top level and nested', (_label, bits) => {
    const value = fromBits(bits);
    expect(Number.isFinite(value)).toBe(false);
    expect(() => canonicalJson(value)).toThrow();
    expect(() => canonicalJson({ a: [1, value] })).toThrow();
  });
});

describe('canonicalJson: values JSON cannot represent', () => {
  it('throws on BigInt (top level and nested)', () => {
    expect(() => canonicalJson(1n)).toThrow();
    expect(() => canonicalJson({ a: 1n })).toThrow();
  });

  it('throws on a top-level undefined, function or symbol', () => {
    expect(() => canonicalJson(undefined)).toThrow(TypeError);
    expect(() => canonicalJson(() => 1)).toThrow(TypeError);
    expect(() => canonicalJson(Symbol('x'))).toThrow(TypeError);
  });
});

describe('RFC 8785 section 3.2.2/3.2.4: the sample object', () => {
  // Input exactly as printed in section 3.2.2 (escapes kept raw).
  const input = String.raw`{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`;
  // Expected canonical form (section 3.2.3 of the RFC prints it; the euro sign is a raw character).
  const expected = String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`;
  // Its UTF-8 bytes as printed in section 3.2.4.
  const expectedHex = `
    7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
    75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
    5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
    65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
    5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
    30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d`;

  it('canonicalizes to the exact expected string', () => {
    expect(canonicalJson(JSON.parse(input))).toBe(expected);
  });

  it('produces exactly the UTF-8 bytes of section 3.2.4', () => {
    expect(utf8Hex(canonicalJson(JSON.parse(input)))).toBe(squash(expectedHex));
    expect(utf8Hex(expected)).toBe(squash(expectedHex));
  });
});

describe('RFC 8785 section 3.2.3: sorting of object properties', () => {
  const input = String.raw`{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`;
  const expected =
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
    '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}';
  // UTF-8 of the expected output, byte by byte: "\r" stays escaped (5c 72); U+0080 = c2 80,
  // U+00F6 = c3 b6, U+20AC = e2 82 ac, U+1F600 = f0 9f 98 80, U+FB33 = ef ac b3.
  const expectedHex = `
    7b 22 5c 72 22 3a 22 43 61 72 72 69 61 67 65 20 52 65 74 75 72 6e 22 2c
    22 31 22 3a 22 4f 6e 65 22 2c
    22 c2 80 22 3a 22 43 6f 6e 74 72 6f 6c 22 2c
    22 c3 b6 22 3a 22 4c 61 74 69 6e 20 53 6d 61 6c 6c 20 4c 65 74 74 65 72 20 4f 20
    57 69 74 68 20 44 69 61 65 72 65 73 69 73 22 2c
    22 e2 82 ac 22 3a 22 45 75 72 6f 20 53 69 67 6e 22 2c
    22 f0 9f 98 80 22 3a 22 45 6d 6f 6a 69 3a 20 47 72 69 6e 6e 69 6e 67 20 46 61 63 65 22 2c
    22 ef ac b3 22 3a 22 48 65 62 72 65 77 20 4c 65 74 74 65 72 20 44 61 6c 65 74 20 57 69
    74 68 20 44 61 67 65 73 68 22 7d`;

  it('sorts by UTF-16 code units and produces the exact expected string', () => {
    expect(canonicalJson(JSON.parse(input))).toBe(expected);
  });

  it('produces the expected UTF-8 bytes', () => {
    expect(utf8Hex(canonicalJson(JSON.parse(input)))).toBe(squash(expectedHex));
  });

  it('the order does not depend on insertion order', () => {
    const parsed = JSON.parse(input) as Record<string, string>;
    const reversed = Object.fromEntries(Object.entries(parsed).reverse());
    expect(canonicalJson(reversed)).toBe(expected);
  });
});

// cyberphone/json-canonicalization testdata/{input,output,outhex}, verbatim (commit
// 19d51d7fe467d4706a3ff08adf8a748f29fc21e0); non-ASCII characters are written as \u escapes.
const CYBERPHONE: { name: string; input: string; output: string; outhex: string }[] = [
  {
    name: 'arrays',
    input: '[\n  56,\n  {\n    "d": true,\n    "10": null,\n    "1": [ ]\n  }\n]\n',
    output: '[56,{"1":[],"10":null,"d":true}]',
    outhex: '5b 35 36 2c 7b 22 31 22 3a 5b 5d 2c 22 31 30 22 3a 6e 75 6c 6c 2c 22 64 22 3a 74 72 75 65 7d 5d',
  },
  {
    name: 'french',
    input:
      '{\n  "peach": "This sorting order",\n  "p\u00e9ch\u00e9": "is wrong according to French",\n  "p\u00eache": "but canonicalization MUST",\n  "sin":   "ignore locale"\n}\n',
    output:
      '{"peach":"This sorting order","p\u00e9ch\u00e9":"is wrong according to French","p\u00eache":"but canonicalization MUST","sin":"ignore locale"}',
    outhex:
      '7b 22 70 65 61 63 68 22 3a 22 54 68 69 73 20 73 6f 72 74 69 6e 67 20 6f 72 64 65 72 22 2c 22 70\nc3 a9 63 68 c3 a9 22 3a 22 69 73 20 77 72 6f 6e 67 20 61 63 63 6f 72 64 69 6e 67 20 74 6f 20 46\n72 65 6e 63 68 22 2c 22 70 c3 aa 63 68 65 22 3a 22 62 75 74 20 63 61 6e 6f 6e 69 63 61 6c 69 7a\n61 74 69 6f 6e 20 4d 55 53 54 22 2c 22 73 69 6e 22 3a 22 69 67 6e 6f 72 65 20 6c 6f 63 61 6c 65\n22 7d',
  },
  {
    name: 'structures',
    input:
      '{\n  "1": {"f": {"f": "hi","F": 5} ,"\\n": 56.0},\n  "10": { },\n  "": "empty",\n  "a": { },\n  "111": [ {"e": "yes","E": "no" } ],\n  "A": { }\n}',
    output:
      '{"":"empty","1":{"\\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{"E":"no","e":"yes"}],"A":{},"a":{}}',
    outhex:
      '7b 22 22 3a 22 65 6d 70 74 79 22 2c 22 31 22 3a 7b 22 5c 6e 22 3a 35 36 2c 22 66 22 3a 7b 22 46\n22 3a 35 2c 22 66 22 3a 22 68 69 22 7d 7d 2c 22 31 30 22 3a 7b 7d 2c 22 31 31 31 22 3a 5b 7b 22\n45 22 3a 22 6e 6f 22 2c 22 65 22 3a 22 79 65 73 22 7d 5d 2c 22 41 22 3a 7b 7d 2c 22 61 22 3a 7b\n7d 7d',
  },
  {
    name: 'unicode',
    input: '{\n  "Unnormalized Unicode":"A\\u030a"\n}\n',
    output: '{"Unnormalized Unicode":"A\u030a"}',
    outhex: '7b 22 55 6e 6e 6f 72 6d 61 6c 69 7a 65 64 20 55 6e 69 63 6f 64 65 22 3a 22 41 cc 8a 22 7d',
  },
  {
    name: 'values',
    input:
      '{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n  "literals": [null, true, false]\n}',
    output:
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    outhex:
      '7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72 75 65 2c 66 61 6c 73 65 5d 2c 22 6e\n75 6d 62 65 72 73 22 3a 5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31 65 2b 33 30\n2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37 5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24\n5c 75 30 30 30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d',
  },
  {
    name: 'weird',
    input:
      '{\n  "\\u20ac": "Euro Sign",\n  "\\r": "Carriage Return",\n  "\\u000a": "Newline",\n  "1": "One",\n  "\\u0080": "Control\\u007f",\n  "\\ud83d\\ude02": "Smiley",\n  "\\u00f6": "Latin Small Letter O With Diaeresis",\n  "\\ufb33": "Hebrew Letter Dalet With Dagesh",\n  "</script>": "Browser Challenge"\n}\n',
    output:
      '{"\\n":"Newline","\\r":"Carriage Return","1":"One","</script>":"Browser Challenge","\u0080":"Control\u007f","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude02":"Smiley","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    outhex:
      '7b 22 5c 6e 22 3a 22 4e 65 77 6c 69 6e 65 22 2c 22 5c 72 22 3a 22 43 61 72 72 69 61 67 65 20 52\n65 74 75 72 6e 22 2c 22 31 22 3a 22 4f 6e 65 22 2c 22 3c 2f 73 63 72 69 70 74 3e 22 3a 22 42 72\n6f 77 73 65 72 20 43 68 61 6c 6c 65 6e 67 65 22 2c 22 c2 80 22 3a 22 43 6f 6e 74 72 6f 6c 7f 22\n2c 22 c3 b6 22 3a 22 4c 61 74 69 6e 20 53 6d 61 6c 6c 20 4c 65 74 74 65 72 20 4f 20 57 69 74 68\n20 44 69 61 65 72 65 73 69 73 22 2c 22 e2 82 ac 22 3a 22 45 75 72 6f 20 53 69 67 6e 22 2c 22 f0\n9f 98 82 22 3a 22 53 6d 69 6c 65 79 22 2c 22 ef ac b3 22 3a 22 48 65 62 72 65 77 20 4c 65 74 74\n65 72 20 44 61 6c 65 74 20 57 69 74 68 20 44 61 67 65 73 68 22 7d',
  },
];

describe('cyberphone/json-canonicalization test data', () => {
  it.each(CYBERPHONE)('$name: input canonicalizes to output', ({ input, output }) => {
    expect(canonicalJson(JSON.parse(input))).toBe(output);
  });

  it.each(CYBERPHONE)('$name: output bytes equal outhex', ({ input, outhex }) => {
    expect(utf8Hex(canonicalJson(JSON.parse(input)))).toBe(squash(outhex));
  });

  it.each(CYBERPHONE)('$name: canonical output is a fixed point', ({ output }) => {
    expect(canonicalJson(JSON.parse(output))).toBe(output);
  });
});

describe('cross-check against the independent json-canonicalize implementation', () => {
  const samples: [string, unknown][] = [
    [
      'unicode keys',
      { z: 1, '\u00e9': 2, '\ud83d\ude00': 3, Z: 4, '\ufb33': 5, '\u0080': 6, '': 7, '10': 8, '9': 9 },
    ],
    [
      'nested arrays and objects',
      { b: [3, [2, [1, { y: null, x: true }]], { k: [] }], a: { d: { c: { b: { a: [false] } } } } },
    ],
    [
      'numbers',
      {
        n: [
          0,
          -0,
          1,
          -1,
          0.1,
          1e21,
          1e-7,
          123456789012345680000,
          5e-324,
          1.7976931348623157e308,
          2 ** 53,
          -1.5e-9,
        ],
      },
    ],
    [
      'strings with escapes',
      { s: '\u0000\u0001\u001f "quoted" \\ / \b\f\n\r\t \u007f \u2028\u2029 \ud83d\ude00', t: '<script>&' },
    ],
    [
      'a policy-like document',
      {
        policy_version: '1',
        steps: [
          { tool: 'deploy', approvers: ['b', 'a'], quorum: 2 },
          { tool: 'build', approvers: [], quorum: 0 },
        ],
        meta: { '\u00f6': 'o umlaut', o: 'plain', O: 'upper', ttl_s: 3600, ratio: 0.75 },
      },
    ],
  ];

  it.each(samples)('%s', (_label, value) => {
    expect(canonicalJson(value)).toBe(canonicalize(value));
  });
});

describe('jcsHashB64u', () => {
  const value = { b: [1, { d: 'x', c: '\u20ac' }], a: 0.5 };

  it('is a 43-character unpadded base64url SHA-256', () => {
    expect(jcsHashB64u(value)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('equals SHA-256 over the UTF-8 bytes of the canonical string', () => {
    const canonical = canonicalJson(value);
    expect(canonical).toBe('{"a":0.5,"b":[1,{"c":"\u20ac","d":"x"}]}');
    expect(jcsHashB64u(value)).toBe(createHash('sha256').update(canonical, 'utf8').digest('base64url'));
  });

  it('does not depend on key order, but does on values and array order', () => {
    expect(jcsHashB64u({ a: 0.5, b: [1, { c: '\u20ac', d: 'x' }] })).toBe(jcsHashB64u(value));
    expect(jcsHashB64u({ a: 0.5, b: [{ c: '\u20ac', d: 'x' }, 1] })).not.toBe(jcsHashB64u(value));
    expect(jcsHashB64u({ a: 0.25, b: [1, { c: '\u20ac', d: 'x' }] })).not.toBe(jcsHashB64u(value));
  });

  it('sha256B64u matches the FIPS 180-2 "abc" vector', () => {
    const abc = Buffer.from('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'hex');
    expect(sha256B64u('abc')).toBe(abc.toString('base64url'));
    // jcsHashB64u of a string hashes its JSON form, quotes included.
    expect(jcsHashB64u('abc')).toBe(sha256B64u('"abc"'));
  });
});
