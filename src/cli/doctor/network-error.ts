/**
 * Why a connection failed, in words an operator can act on. Node's fetch (undici) throws
 * `TypeError: fetch failed` and keeps the system error in `cause` (an `AggregateError` when
 * several addresses were tried), so the code is looked for down the chain.
 */
export function networkErrorCode(err: unknown): string | null {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  while (queue.length) {
    const e = queue.shift();
    if (typeof e !== 'object' || e === null || seen.has(e)) continue;
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    if ((e as { name?: unknown }).name === 'TimeoutError') return 'TIMEOUT';
    queue.push((e as { cause?: unknown }).cause, ...((e as { errors?: unknown[] }).errors ?? []));
  }
  return null;
}

const TLS_CERTIFICATE = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The cause of a failed request to `url`, and the fix, named. */
export function describeNetworkError(err: unknown, url: URL): { message: string; fix: string } {
  const code = networkErrorCode(err);
  const where = `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
  switch (code) {
    case 'ECONNREFUSED':
      return {
        message: `connection refused at ${where} (ECONNREFUSED): nothing listens there`,
        fix: 'check the host and port, and that the server is running',
      };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return {
        message: `the host name ${url.hostname} does not resolve (${code})`,
        fix: 'check the spelling of the host, and that this machine can resolve it (DNS)',
      };
    case 'TIMEOUT':
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return {
        message: `no answer from ${where} in time (${code})`,
        fix: 'check the address, and any firewall or proxy between here and there',
      };
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return {
        message: `${where} closed the connection (${code})`,
        fix: 'check that the address is the server itself and not a proxy that refuses this client',
      };
    case 'EPROTO':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return {
        message: `TLS handshake with ${where} failed (${code}): it does not speak TLS on that port`,
        fix: 'use http:// for a server without TLS, or the port where it serves https://',
      };
  }
  if (code !== null && (TLS_CERTIFICATE.has(code) || code.startsWith('ERR_TLS') || code.includes('CERT'))) {
    return {
      message: `the TLS certificate of ${url.hostname} is not trusted (${code})`,
      fix:
        code === 'ERR_TLS_CERT_ALTNAME_INVALID'
          ? 'use the host name the certificate is issued for'
          : code === 'CERT_HAS_EXPIRED'
            ? 'renew the certificate'
            : 'use a certificate from a trusted CA, or give Node your CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem',
    };
  }
  return {
    message: `cannot reach ${where} (${code ?? innermostMessage(err)})`,
    fix: 'check the address and the network between here and there',
  };
}

/** fetch says only "fetch failed"; what went wrong is in its innermost cause ("bad port", …). */
function innermostMessage(err: unknown): string {
  let message = err instanceof Error ? err.message : String(err);
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++)
    if (e.message) message = e.message;
  return message;
}
