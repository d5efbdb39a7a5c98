import { generateOpenApiDocument } from 'trpc-to-openapi';
import { appRouter } from '@mvp/api';

export const REST_PREFIX = '/api/v1';

let cached: { baseUrl: string; json: string } | undefined;

/** The OpenAPI 3 document for the REST shim; generated once per base URL. */
export function openApiJson(baseUrl: string, version: string): string {
  if (cached?.baseUrl !== baseUrl) {
    const document = generateOpenApiDocument(appRouter, {
      title: 'MVP API',
      description:
        'REST shim over the MVP tRPC router for integrators who do not use TypeScript. ' +
        'Message and call payloads are end-to-end encrypted by clients; the server sees ciphertext only.',
      version,
      baseUrl: baseUrl + REST_PREFIX,
      docsUrl: `${baseUrl}/docs`,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
    });
    cached = { baseUrl, json: JSON.stringify(document) };
  }
  return cached.json;
}
