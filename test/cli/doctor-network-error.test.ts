import { describe, expect, it } from 'vitest';
import { describeNetworkError, networkErrorCode } from '../../src/cli/doctor/network-error.js';

/** What Node's fetch throws: `TypeError: fetch failed`, the system error as its cause. */
const fetchFailed = (cause: unknown) => new TypeError('fetch failed', { cause });
const sysError = (code: string, message = code) => Object.assign(new Error(message), { code });
const url = new URL('https://chat.example.com/');

describe('describeNetworkError', () => {
  it('finds the code under fetch’s cause, and under an AggregateError of several addresses', () => {
    expect(networkErrorCode(fetchFailed(sysError('ECONNREFUSED')))).toBe('ECONNREFUSED');
    const both = Object.assign(new AggregateError([sysError('ECONNREFUSED'), sysError('ECONNREFUSED')]), {});
    expect(networkErrorCode(fetchFailed(both))).toBe('ECONNREFUSED');
    expect(networkErrorCode(new DOMException('timed out', 'TimeoutError'))).toBe('TIMEOUT');
    expect(networkErrorCode(new Error('no code'))).toBeNull();
  });

  it('survives a cause chain that loops', () => {
    const a = new Error('a') as Error & { cause?: unknown };
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(networkErrorCode(a)).toBeNull();
    expect(describeNetworkError(a, url).message).toMatch(/^cannot reach chat\.example\.com:443/);
  });

  it('names DNS, refusal, timeouts and resets, each with a fix', () => {
    expect(describeNetworkError(fetchFailed(sysError('ENOTFOUND')), url)).toEqual({
      message: 'the host name chat.example.com does not resolve (ENOTFOUND)',
      fix: expect.stringMatching(/DNS/),
    });
    expect(
      describeNetworkError(fetchFailed(sysError('ECONNREFUSED')), new URL('http://10.0.0.5:8065')),
    ).toEqual({
      message: 'connection refused at 10.0.0.5:8065 (ECONNREFUSED): nothing listens there',
      fix: expect.stringMatching(/host and port/),
    });
    expect(describeNetworkError(fetchFailed(sysError('UND_ERR_CONNECT_TIMEOUT')), url).message).toMatch(
      /no answer from chat\.example\.com:443 in time/,
    );
    expect(describeNetworkError(fetchFailed(sysError('ECONNRESET')), url).message).toMatch(
      /closed the connection/,
    );
  });

  it('names certificate causes: self-signed, expired, wrong host name, and plain HTTP on a TLS port', () => {
    const self = describeNetworkError(fetchFailed(sysError('DEPTH_ZERO_SELF_SIGNED_CERT')), url);
    expect(self.message).toBe(
      'the TLS certificate of chat.example.com is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)',
    );
    expect(self.fix).toMatch(/NODE_EXTRA_CA_CERTS/);
    expect(describeNetworkError(fetchFailed(sysError('SELF_SIGNED_CERT_IN_CHAIN')), url).fix).toMatch(
      /NODE_EXTRA_CA_CERTS/,
    );
    expect(describeNetworkError(fetchFailed(sysError('CERT_HAS_EXPIRED')), url).fix).toBe(
      'renew the certificate',
    );
    expect(describeNetworkError(fetchFailed(sysError('ERR_TLS_CERT_ALTNAME_INVALID')), url).fix).toMatch(
      /host name the certificate is issued for/,
    );
    expect(describeNetworkError(fetchFailed(sysError('ERR_SSL_WRONG_VERSION_NUMBER')), url).message).toMatch(
      /does not speak TLS on that port/,
    );
  });

  it('falls back to the innermost message fetch hides', () => {
    expect(
      describeNetworkError(fetchFailed(new Error('bad port')), new URL('http://127.0.0.1:1')).message,
    ).toBe('cannot reach 127.0.0.1:1 (bad port)');
  });
});
