import { generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { appError } from './app-error.js';
import { newId } from './ids.js';

/** Strict standard base64, as Go's base64.StdEncoding decodes it (Buffer.from is lenient). */
function fromStdBase64(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

const failed = (reason: string, params: Record<string, string | number> = {}) =>
  appError(`interactive_message.decode_trigger_id.${reason}`, 400, params);

/**
 * Trigger ids (model.GenerateTriggerId / DecodeAndVerifyTriggerId): a fresh client trigger id,
 * the user id and the time in milliseconds, joined with `:` and signed with the server's ECDSA
 * P-256 key (the "asymmetric signing key", SHA-256, DER signature), the whole base64-encoded.
 * Only the server can make one; it names the user a dialog may be opened for, and expires.
 */
export class TriggerIds {
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;

  constructor(private readonly now: () => number) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
  }

  generate(userId: string): { clientTriggerId: string; triggerId: string } {
    const clientTriggerId = newId();
    const data = `${clientTriggerId}:${userId}:${this.now()}:`;
    const signature = sign('sha256', Buffer.from(data), this.privateKey).toString('base64');
    return { clientTriggerId, triggerId: Buffer.from(data + signature).toString('base64') };
  }

  /** The client trigger id and user the trigger was made for; throws Mattermost's 400s. */
  verify(triggerId: string, timeoutMs: number): { clientTriggerId: string; userId: string } {
    const decoded = fromStdBase64(triggerId);
    if (!decoded) throw failed('base64_decode_failed');
    const parts = decoded.toString('utf8').split(':');
    if (parts.length !== 4) throw failed('missing_data');
    const [clientTriggerId, userId, timestamp, encodedSignature] = parts as [string, string, string, string];
    // strconv.ParseInt failing leaves 0: such a trigger is simply long expired.
    const issuedAt = /^[+-]?\d+$/.test(timestamp) ? Number(timestamp) : 0;
    if (this.now() - issuedAt > timeoutMs) throw failed('expired', { Duration: `${timeoutMs / 1000}s` });
    const signature = fromStdBase64(encodedSignature);
    if (!signature) throw failed('base64_decode_failed_signature');
    let valid: boolean;
    try {
      valid = verify(
        'sha256',
        Buffer.from(`${clientTriggerId}:${userId}:${timestamp}:`),
        this.publicKey,
        signature,
      );
    } catch (err) {
      throw Object.assign(failed('signature_decode_failed'), { cause: err });
    }
    if (!valid) throw failed('verify_signature_failed');
    return { clientTriggerId, userId };
  }
}
