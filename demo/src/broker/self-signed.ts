/**
 * A self-signed certificate for the demo's RAS broker, as many real brokers have one: the collector
 * trusts it through `ras.ca`, the certificate itself. node:crypto makes keys and signatures but not
 * X.509 certificates, and the demo must not need openssl (scripts/setup does not install it for the
 * demo), so the certificate is written here in DER (RFC 5280 §4.1): an EC P-256 key, ECDSA with
 * SHA-256, the subject `CN=<name>`, basicConstraints CA:TRUE (it is its own CA) and subjectAltName
 * for the names the broker is reached by.
 */
import { X509Certificate, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { isIP } from 'node:net';

/** DER: a tag, its length (short or long form), its content. */
function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const length: number[] = [];
  for (let n = body.length; n > 0; n = Math.floor(n / 256)) length.unshift(n % 256);
  const head = body.length < 0x80 ? [body.length] : [0x80 | length.length, ...length];
  return Buffer.concat([Buffer.from([tag, ...head]), body]);
}

const sequence = (...items: Buffer[]) => der(0x30, ...items);

function objectId(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let n = arc >>> 7; n > 0; n >>>= 7) base128.unshift(0x80 | (n & 0x7f));
    bytes.push(...base128);
  }
  return der(0x06, Buffer.from(bytes));
}

/** UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
function time(date: Date): Buffer {
  const text = date.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return date.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(text.slice(2))) : der(0x18, Buffer.from(text));
}

const ECDSA_WITH_SHA256 = sequence(objectId('1.2.840.10045.4.3.2'));

export interface SelfSigned {
  /** The private key, PKCS#8 PEM. */
  readonly key: string;
  /** The certificate, PEM: what the server serves and the client trusts. */
  readonly cert: string;
}

/**
 * A new key and a certificate for it, valid from an hour before `now` for `days` days, for the
 * host names and IPv4 addresses in `names` (the first is also the common name).
 */
export function selfSignedCertificate(names: readonly [string, ...string[]], now: Date, days: number): SelfSigned {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const subject = sequence(der(0x31, sequence(objectId('2.5.4.3'), der(0x0c, Buffer.from(names[0])))));
  // A positive serial of 16 random bytes in DER's shortest form: the top bit cleared keeps the
  // INTEGER positive, and a set second bit keeps the first byte from being a zero that DER forbids
  // (X.690, clause 8.3.2; OpenSSL refuses such a certificate).
  const serial = randomBytes(16);
  serial[0] = 0x40 | (serial[0]! & 0x3f);
  const altNames = names.map((name) => {
    if (isIP(name) === 6) throw new RangeError(`selfSignedCertificate: IPv6 addresses are not written: ${name}`);
    return isIP(name) === 4 ? der(0x87, Buffer.from(name.split('.').map(Number))) : der(0x82, Buffer.from(name));
  });
  const extensions = sequence(
    sequence(
      objectId('2.5.29.19'),
      der(0x01, Buffer.from([0xff])),
      der(0x04, sequence(der(0x01, Buffer.from([0xff])))),
    ),
    sequence(objectId('2.5.29.17'), der(0x04, sequence(...altNames))),
  );
  const tbs = sequence(
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, serial),
    ECDSA_WITH_SHA256,
    subject,
    sequence(time(new Date(now.getTime() - 3_600_000)), time(new Date(now.getTime() + days * 86_400_000))),
    subject,
    publicKey.export({ type: 'spki', format: 'der' }),
    der(0xa3, extensions),
  );
  // ECDSA signatures from node:crypto are DER (r, s) already, as X.509 wants them.
  const signature = sign('sha256', tbs, privateKey);
  const certificate = sequence(tbs, ECDSA_WITH_SHA256, der(0x03, Buffer.from([0]), signature));
  // Parsing it back fails loudly here rather than as a TLS error in the collector's log.
  const cert = new X509Certificate(certificate).toString();
  return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), cert };
}
