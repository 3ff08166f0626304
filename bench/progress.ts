const started = Date.now();

/** A line on stderr saying what the bench is doing and since when (stdout carries only the JSON). */
export function progress(message: string): void {
  process.stderr.write(`bench +${Math.round((Date.now() - started) / 1000)}s: ${message}\n`);
}
