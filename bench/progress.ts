/** A line on stderr saying what the bench is doing (stdout carries only the JSON document). */
export function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}
