import { z } from 'zod';

export const ZSystemInfoOutput = z.object({
  name: z.literal('mvp'),
  version: z.string(),
  serverTime: z.iso.datetime(),
  installId: z.string(),
});
export type TSystemInfoOutput = z.infer<typeof ZSystemInfoOutput>;

export const ZTicksInput = z
  .object({
    intervalMs: z.number().int().min(10).max(60_000).default(1_000),
    /** Set by the client on resume: the id of the last tick it saw. */
    lastEventId: z
      .string()
      .regex(/^\d{1,15}$/)
      .nullish(),
  })
  .default({ intervalMs: 1_000 });
export type TTicksInput = z.input<typeof ZTicksInput>;

export const ZTickEvent = z.object({
  seq: z.number().int().positive(),
  at: z.iso.datetime(),
});
export type TTickEvent = z.infer<typeof ZTickEvent>;
