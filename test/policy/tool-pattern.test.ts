import { describe, expect, it } from 'vitest';
import { matchesAny, matchesPattern } from '../../src/policy/tool-pattern.js';

describe('matchesPattern', () => {
  it.each([
    ['*', ''],
    ['*', 'anything.at/all:here'],
    ['ticket.*', 'ticket.'],
    ['ticket.*', 'ticket.read'],
    ['ticket.*', 'ticket.read.deep/er'],
    ['*.read', 'ticket.read'],
    ['mcp:*/shell', 'mcp:crm-mcp/shell'],
    ['mcp:*/shell', 'mcp:a/b/shell'],
    ['a*c', 'ac'],
    ['a*c', 'abbbc'],
    ['a**c', 'ac'],
    ['*a*', 'xax'],
  ])('%j matches %j', (pattern, value) => {
    expect(matchesPattern(pattern, value)).toBe(true);
  });

  it.each([
    ['ticket.*', 'ticket'],
    ['ticket.*', 'ticketXread'],
    ['a*c', 'acb'],
    ['a*c', 'bac'],
    ['mcp:*/shell', 'mcp:crm-mcp/shell2'],
    ['*.read', 'ticket.reader'],
    ['*a*', 'xyz'],
  ])('%j does not match %j', (pattern, value) => {
    expect(matchesPattern(pattern, value)).toBe(false);
  });

  it('treats "." literally', () => {
    expect(matchesPattern('a.b', 'a.b')).toBe(true);
    expect(matchesPattern('a.b', 'axb')).toBe(false);
    expect(matchesPattern('a.*', 'ab')).toBe(false);
    expect(matchesPattern('a.*', 'a.')).toBe(true);
  });

  it('treats "+" literally', () => {
    expect(matchesPattern('a+', 'a+')).toBe(true);
    expect(matchesPattern('a+', 'aa')).toBe(false);
    expect(matchesPattern('a+', 'a')).toBe(false);
  });

  it('treats "(" and ")" literally', () => {
    expect(matchesPattern('f(x)', 'f(x)')).toBe(true);
    expect(matchesPattern('f(x)', 'fx')).toBe(false);
    expect(matchesPattern('(a|b)', 'a')).toBe(false);
    expect(matchesPattern('(a|b)', '(a|b)')).toBe(true);
  });

  it('treats "/" literally', () => {
    expect(matchesPattern('mcp/tool', 'mcp/tool')).toBe(true);
    expect(matchesPattern('mcp/tool', 'mcp\\tool')).toBe(false);
  });

  it.each([
    ['a?', 'a?', 'a'],
    ['[ab]', '[ab]', 'a'],
    ['x{2}', 'x{2}', 'xx'],
    ['^a$', '^a$', 'a'],
    ['a\\d', 'a\\d', 'a1'],
    ['a|b', 'a|b', 'b'],
  ])('treats the metacharacters in %j literally', (pattern, literal, regexMeaning) => {
    expect(matchesPattern(pattern, literal)).toBe(true);
    expect(matchesPattern(pattern, regexMeaning)).toBe(false);
  });

  it('is anchored at both ends', () => {
    expect(matchesPattern('ticket', 'ticket')).toBe(true);
    expect(matchesPattern('ticket', 'ticket.read')).toBe(false);
    expect(matchesPattern('ticket', 'my-ticket')).toBe(false);
    expect(matchesPattern('ticket', 'xticketx')).toBe(false);
    expect(matchesPattern('read', 'ticket.read')).toBe(false);
  });

  it('gives the same answer on repeated (cached) calls', () => {
    for (let i = 0; i < 3; i++) {
      expect(matchesPattern('cache.*', 'cache.hit')).toBe(true);
      expect(matchesPattern('cache.*', 'cacheXhit')).toBe(false);
    }
  });
});

describe('matchesAny', () => {
  it('is true when any pattern matches', () => {
    expect(matchesAny(['a', 'b.*'], 'b.c')).toBe(true);
    expect(matchesAny(['a', 'b.*'], 'a')).toBe(true);
  });

  it('is false when none match, including an empty list', () => {
    expect(matchesAny(['a', 'b.*'], 'c')).toBe(false);
    expect(matchesAny([], 'anything')).toBe(false);
  });
});
