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
    <script id="api-reference" data-url="/openapi.json"></script>
    <script src="${DOCS_SCRIPT_PATH}"></script>
  </body>
</html>
`;
}

let scriptCache: Promise<Buffer> | undefined;

export function docsScript(): Promise<Buffer> {
  scriptCache ??= readFile(require.resolve('@scalar/api-reference/browser/standalone.js'));
  return scriptCache;
}
