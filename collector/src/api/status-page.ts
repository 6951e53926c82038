/**
 * `GET /`: the live status page, plain files from the package's `static/` folder (no CDN, nothing to
 * build). The page holds no data: it reads the JSON API, with the API's token when one is required.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';

const STATIC_DIR = fileURLToPath(new URL('../../static/', import.meta.url));

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** The page at `/` and every script and style sheet of `static/` (the page's modules import each other). */
function pageFiles(): Record<string, { file: string; type: string }> {
  const html = { file: 'index.html', type: 'text/html; charset=utf-8' };
  const files: Record<string, { file: string; type: string }> = { '/': html, '/index.html': html };
  for (const file of readdirSync(STATIC_DIR)) {
    const type = TYPES[/\.[a-z]+$/.exec(file)?.[0] ?? ''];
    if (type) files[`/static/${file}`] = { file, type };
  }
  return files;
}

// Scripts and styles only from the collector itself: no inline code, no other origin.
const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

export class StatusPage {
  private readonly files = new Map<string, { body: Buffer; type: string }>();

  /** Reads the page's files once; throws at start-up when one is missing. */
  constructor() {
    for (const [path, { file, type }] of Object.entries(pageFiles())) {
      this.files.set(path, { body: readFileSync(STATIC_DIR + file), type });
    }
  }

  /** Serves a page file; returns false for any other path. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const file = this.files.get(path);
    if (!file) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' });
      res.end('only GET is supported\n');
      return true;
    }
    res.writeHead(200, {
      'Content-Type': file.type,
      'Content-Length': file.body.length,
      'Cache-Control': 'no-cache',
      ...SECURITY_HEADERS,
    });
    res.end(req.method === 'HEAD' ? undefined : file.body);
    return true;
  }
}
