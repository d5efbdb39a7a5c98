import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The API reference page: Scalar's standalone bundle served from node_modules, no CDN. */
export const DOCS_SCRIPT_PATH = '/docs/scalar.js';

export function docsHtml(): string {
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>MVP API reference</title>
  </head>
  <body>
    <script
      id="api-reference"
      data-url="/openapi.json"
      data-configuration='{"withDefaultFonts":false,"agent":{"disabled":true}}'
    ></script>
    <script src="${DOCS_SCRIPT_PATH}"></script>
  </body>
</html>
`;
}

/**
 * What the page may do: run its one script and talk to this server, nothing more: no CDN (the
 * default fonts come from one, so they are off), no third-party request proxy carrying a token
 * typed into "Try it", no framing (clickjacking). Scalar injects its styles at run time and
 * draws icons from data: URLs; it only feature-tests eval, so none is allowed.
 */
export function docsHeaders(baseUrl: string): Record<string, string> {
  const api = new URL(baseUrl).origin;
  const policy = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    `connect-src 'self' ${api}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ];
  return {
    'content-security-policy': policy.join('; '),
    'referrer-policy': 'no-referrer',
  };
}

let scriptCache: Promise<Buffer> | undefined;

export function docsScript(): Promise<Buffer> {
  scriptCache ??= readFile(require.resolve('@scalar/api-reference/browser/standalone.js'));
  return scriptCache;
}
