import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';

/** The fenced block the README shows right after naming `file`. */
function blockAfter(readme: string, file: string, lang: string): string {
  const named = readme.indexOf(`\`${file}\``);
  expect(named, `the README names ${file}`).toBeGreaterThan(-1);
  const open = readme.indexOf('```' + lang + '\n', named);
  expect(open, `a ${lang} block follows ${file}`).toBeGreaterThan(-1);
  const start = open + lang.length + 4;
  return readme.slice(start, readme.indexOf('\n```', start) + 1);
}

describe('README examples', () => {
  it.each([
    ['examples/typescript/loop.ts', 'ts'],
    ['examples/python/claw_loop.py', 'python'],
  ])('shows %s exactly as the file the tests run', async (file, lang) => {
    const readme = await readFile('README.md', 'utf8');
    expect(blockAfter(readme, file, lang)).toBe(await readFile(file, 'utf8'));
  });
});
