/**
 * The demo broker's self-signed certificate, written by hand in DER: OpenSSL must accept every one
 * of them (a random serial once in a few hundred made a first byte of zero, which strict DER refuses),
 * and a TLS client that trusts it alone must complete a handshake with the server that serves it.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { selfSignedCertificate } from '../demo/src/broker/self-signed.js';

const NOW = new Date('2031-05-17T08:00:00Z');

describe('the demo broker’s self-signed certificate', () => {
  it('parses in OpenSSL every time, with a positive serial in its shortest form', () => {
    // 2,000 certificates: the old serial failed one in 256, so all of them passing is no accident.
    for (let i = 0; i < 2000; i += 1) {
      const { cert } = selfSignedCertificate(['localhost', '127.0.0.1'], NOW, 30);
      const x509 = new X509Certificate(cert);
      expect(x509.serialNumber).toMatch(/^[4-7][0-9A-F]{31}$/);
    }
  });

  it('names the host and address, is valid from an hour before now for the days asked, and is its own CA', () => {
    const { cert } = selfSignedCertificate(['localhost', '127.0.0.1'], NOW, 30);
    const x509 = new X509Certificate(cert);
    expect(x509.subject).toBe('CN=localhost');
    expect(x509.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
    expect(new Date(x509.validFrom).toISOString()).toBe('2031-05-17T07:00:00.000Z');
    expect(new Date(x509.validTo).toISOString()).toBe('2031-06-16T08:00:00.000Z');
    expect(x509.ca).toBe(true);
    expect(x509.checkIssued(x509)).toBe(true);
    expect(x509.verify(x509.publicKey)).toBe(true);
  });

  it('writes GeneralizedTime from 2050 on', () => {
    const { cert } = selfSignedCertificate(['localhost'], new Date('2049-12-31T12:00:00Z'), 2);
    const x509 = new X509Certificate(cert);
    expect(new Date(x509.validTo).toISOString()).toBe('2050-01-02T12:00:00.000Z');
  });

  it('refuses an IPv6 address it cannot write', () => {
    expect(() => selfSignedCertificate(['localhost', '::1'], NOW, 30)).toThrow(/IPv6 addresses are not written: ::1/);
  });

  it('carries a TLS handshake to a client that trusts only it', async () => {
    const { key, cert } = selfSignedCertificate(['localhost', '127.0.0.1'], new Date(), 1);
    const server = createServer({ key, cert }, (socket) => socket.end('hello'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const socket = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' });
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      await once(socket, 'end');
      expect(socket.authorized).toBe(true);
      expect(Buffer.concat(chunks).toString()).toBe('hello');
    } finally {
      server.close();
    }
  });
});
