import {
  acceptsRequestBody,
  generateOpenApiDocument,
  type OpenAPIObject,
  type OpenApiMethod,
} from 'trpc-to-openapi';
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
      defs: { [ERROR_SCHEMA]: ZRestError },
    });
    cached = { baseUrl, json: JSON.stringify(withServerErrors(document)) };
  }
  return cached.json;
}

const ZDeviceRef = z.object({ userId: z.string(), deviceId: z.string() });

/** `error.data` as the error formatter (@mvp/api) and sendError write it; more may come. */
const ZRestErrorData = z.looseObject({
  code: z.string().meta({ description: 'The transport code, as `code` above' }),
  httpStatus: z.number().int(),
  appCode: ZAppErrorCode.meta({ description: 'What to switch on: stable across versions' }),
  requestId: z.string().optional().meta({ description: 'Quote it when reporting a problem' }),
  issues: z
    .array(z.object({ path: z.string(), message: z.string(), code: z.string() }))
    .optional()
    .meta({ description: 'With BAD_REQUEST: which fields are wrong' }),
  retryAfterMs: z
    .number()
    .int()
    .optional()
    .meta({ description: 'With TOO_MANY_REQUESTS: how long to wait (also `Retry-After`)' }),
  devices: z
    .object({ missing: z.array(ZDeviceRef), stale: z.array(ZDeviceRef) })
    .optional()
    .meta({ description: 'With DEVICES_CHANGED: devices to add to the send, and gone ones' }),
});

/**
 * Every error body of the server: the REST shim's (from the error formatter, plus zod's raw
 * `issues` on a validation failure) and the plain routes' (sendError in createHttpHandler).
 */
export const ZRestError = z
  .looseObject({
    code: z.string().meta({ description: 'The transport code, e.g. BAD_REQUEST' }),
    message: z.string(),
    data: ZRestErrorData,
    issues: z
      .array(z.looseObject({ message: z.string() }))
      .optional()
      .meta({ description: "On input validation failures: zod's issues, as they are" }),
  })
  .meta({
    description: 'An error; switch on `data.appCode`',
    example: {
      code: 'UNAUTHORIZED',
      message: 'Sign in first',
      data: {
        code: 'UNAUTHORIZED',
        httpStatus: 401,
        appCode: 'UNAUTHORIZED',
        requestId: '0196f0d4-5c7e-7a2b-9d3f-2b8c1e4a6f10',
      },
    },
  });

const ERROR_SCHEMA = 'Error';

type Operation = NonNullable<NonNullable<OpenAPIObject['paths']>[string]['get']>;
type Responses = NonNullable<Operation['responses']>;
/** What the generator writes for an answer (responses are typed `any` by openapi3-ts). */
type GeneratedResponse = { content?: Record<string, { schema?: { $ref?: string } }> };

/** Refusals that can come before any procedure runs, which the generator does not list. */
function refusalsBefore(method: OpenApiMethod): Responses {
  const ref = { $ref: `#/components/schemas/${ERROR_SCHEMA}` };
  const refusal = (description: string) => ({
    description,
    content: { 'application/json': { schema: ref } },
  });
  const body = acceptsRequestBody(method)
    ? {
        413: refusal('Body larger than MVP_HTTP_MAX_BODY_BYTES (PAYLOAD_TOO_LARGE)'),
        415: refusal(
          'A body that is not application/json (UNSUPPORTED_MEDIA_TYPE, appCode BAD_REQUEST)',
        ),
      }
    : {};
  return {
    ...body,
    429: refusal('Over the per-address request budget; see Retry-After (TOO_MANY_REQUESTS)'),
  };
}

/**
 * The generator describes errors as {message, code, issues[{message}]} with
 * `additionalProperties: false`, one schema per code: a validating client refused every real
 * error, which carries `data`. Each error answer is pointed at the real shape instead, and the
 * refusals that come before a procedure are added where they can happen.
 */
function withServerErrors(document: OpenAPIObject): OpenAPIObject {
  const errorRef = `#/components/schemas/${ERROR_SCHEMA}`;
  for (const pathItem of Object.values(document.paths ?? {})) {
    for (const method of ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'] as const) {
      const operation = pathItem[method.toLowerCase() as Lowercase<OpenApiMethod>];
      if (!operation) continue;
      const responses: Responses = (operation.responses ??= {});
      for (const response of Object.values(responses) as GeneratedResponse[]) {
        const media = response.content?.['application/json'];
        if (media?.schema?.$ref?.startsWith('#/components/schemas/error.')) {
          media.schema = { $ref: errorRef };
        }
      }
      for (const [status, refusal] of Object.entries(refusalsBefore(method))) {
        responses[status] ??= refusal;
      }
    }
  }
  const schemas = document.components?.schemas ?? {};
  for (const name of Object.keys(schemas)) if (name.startsWith('error.')) delete schemas[name];
  return document;
}

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
