/** Waits for a call and drops its answer: for wrappers whose API promises `void`. */
export async function withoutResult(call: Promise<unknown>): Promise<void> {
  await call;
}
