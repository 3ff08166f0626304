/** Injected everywhere time matters so tests can freeze it. */
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();

export function fixedClock(at: Date | string): Clock {
  const t = new Date(at);
  return () => new Date(t);
}
