import { generateOpenApiDocument } from 'trpc-to-openapi';
import { z } from 'zod';
import type { ZodOpenApiPathsObject, ZodOpenApiRequestBodyObject } from 'zod-openapi';
import { appRouter } from '@mvp/api';
import { ZAppErrorCode, ZConversation, ZMe } from '@mvp/contracts';

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
      paths: AVATAR_UPLOAD,
    });
    cached = { baseUrl, json: JSON.stringify(document) };
  }
  return cached.json;
}

/** The error body of the plain HTTP routes (sendError in createHttpHandler). */
const ZRestError = z.object({
  code: z.string(),
  message: z.string(),
  data: z.object({
    code: z.string(),
    httpStatus: z.number().int(),
    appCode: ZAppErrorCode,
    requestId: z.string().optional(),
    retryAfterMs: z.number().int().optional(),
  }),
});

const binary = { schema: { type: 'string', format: 'binary' } } as const;
const error = (description: string) => ({
  description,
  content: { 'application/json': { schema: ZRestError } },
});

/**
 * The upload is a plain HTTP route (tRPC carries JSON, not bytes), so the generator cannot see
 * it; it is described here and merged next to the generated `DELETE /me/avatar`.
 */
const imageBody: ZodOpenApiRequestBodyObject = {
  required: true,
  content: {
    'image/png': binary,
    'image/jpeg': binary,
    'image/webp': binary,
    'application/octet-stream': binary,
    'multipart/form-data': {
      schema: {
        type: 'object',
        required: ['file'],
        properties: { file: { type: 'string', format: 'binary' } },
      },
    },
  },
};

const imageRefusals = {
  400: error('Truncated image or malformed form (BAD_REQUEST)'),
  401: error('Not signed in, or the session ended (UNAUTHORIZED)'),
  413: error('Larger than MVP_AVATAR_MAX_BYTES, 2 MiB by default (PAYLOAD_TOO_LARGE)'),
  415: error('Not a PNG, JPEG or WebP image (UNSUPPORTED_MEDIA_TYPE)'),
  429: error('Too many uploads or requests; see Retry-After (TOO_MANY_REQUESTS)'),
} as const;

const AVATAR_UPLOAD: ZodOpenApiPathsObject = {
  '/me/avatar': {
    put: {
      operationId: 'me-uploadAvatar',
      summary: 'Upload my avatar (PNG, JPEG or WebP)',
      description:
        'The raw image as the body, or multipart/form-data with the image in the field `file`. ' +
        'The type is read from the bytes, not from Content-Type. Answers my account with the ' +
        'new `avatarUrl`, a path on this server that changes with every upload.',
      tags: ['me'],
      security: [{ bearer: [] }],
      requestBody: imageBody,
      responses: {
        200: { description: 'My account', content: { 'application/json': { schema: ZMe } } },
        ...imageRefusals,
      },
    },
  },
  '/conversations/{id}/avatar': {
    put: {
      operationId: 'conversations-uploadAvatar',
      summary: "Upload a group's or channel's picture (admins)",
      description: 'Same body and checks as `PUT /me/avatar`; answers the conversation.',
      tags: ['conversations'],
      security: [{ bearer: [] }],
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      requestBody: imageBody,
      responses: {
        200: {
          description: 'The conversation',
          content: { 'application/json': { schema: ZConversation } },
        },
        ...imageRefusals,
        403: error('Not an admin, or a direct conversation (FORBIDDEN / BAD_REQUEST)'),
        404: error('No such conversation (NOT_FOUND)'),
      },
    },
  },
};
