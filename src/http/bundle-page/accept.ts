/**
 * Whether a request asks for the bundle page rather than the bundle: only when `text/html` is
 * named (or `text/*`) with a higher quality than JSON gets. No Accept, `*\/*`, a tie and
 * anything unknown keep the JSON answer, which is what every API client had before the page.
 */
export function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  const ranges = accept.split(',').flatMap((item) => {
    const [type = '', ...params] = item.trim().toLowerCase().split(';');
    let q = 1;
    for (const p of params) {
      const [k, v] = p.trim().split('=');
      if (k === 'q') q = /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(v ?? '') ? Number(v) : 0;
    }
    return /^[a-z0-9!#$&^_.+*-]+\/[a-z0-9!#$&^_.+*-]+$/.test(type.trim()) ? [{ type: type.trim(), q }] : [];
  });
  /** RFC 9110: the most specific range that matches decides the quality. */
  const quality = (mime: string) => {
    const [major] = mime.split('/');
    const exact = ranges.filter((r) => r.type === mime);
    const family = ranges.filter((r) => r.type === `${major}/*`);
    const any = ranges.filter((r) => r.type === '*/*');
    const best = [exact, family, any].find((m) => m.length > 0) ?? [];
    return Math.max(0, ...best.map((r) => r.q));
  };
  const named = ranges.some((r) => r.type === 'text/html' || r.type === 'text/*');
  return named && quality('text/html') > quality('application/json');
}
