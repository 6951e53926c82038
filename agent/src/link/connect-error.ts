/**
 * A failed connection to the collector in plain words: what most likely happened and what to change,
 * with the system's code kept at the end for searching. OpenSSL's own texts ("packet length too
 * long", "wrong version number") say nothing to the person who has to act on them.
 */

const NOT_TRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
]);

/** One line for a connection error to `url` (the collector's configured address). */
export function explainConnectError(err: Error & { code?: string }, url: string): string {
  let where = url;
  try {
    where = new URL(url).host;
  } catch {
    // The configured text is shown as it is.
  }
  const code = err.code ?? '';
  const tls = url.startsWith('wss:');
  const tail = code ? ` (${code})` : ` (${err.message})`;
  if (
    code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
    code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' ||
    /packet length too long|wrong version number/i.test(err.message)
  )
    return `the collector at ${where} does not speak TLS on this port: use ws:// instead of wss://, or give the collector a certificate (tls in its configuration)${tail}`;
  if (NOT_TRUSTED.has(code))
    return `the collector's certificate is not trusted: set tls.ca to the PEM file of the CA that signed it${tail}`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `the collector's certificate is not made out to ${where}: connect by a name the certificate holds${tail}`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID')
    return `the collector's certificate is ${code === 'CERT_HAS_EXPIRED' ? 'expired' : 'not valid yet'}: renew it, or check this host's clock${tail}`;
  if (code === 'ECONNREFUSED')
    return `unreachable: nothing listens at ${where}; is the collector running, and is the port right?${tail}`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return `unreachable: the name in ${where} does not resolve; check the collector address and this host's DNS${tail}`;
  if (code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH')
    return `unreachable: no answer from ${where}; a firewall between this host and the collector?${tail}`;
  if (!tls && (code === 'ECONNRESET' || /socket hang up/i.test(err.message)))
    return `the collector at ${where} closed the connection at once: if it uses TLS, use wss:// instead of ws://${tail}`;
  return `unreachable: ${err.message}`;
}
