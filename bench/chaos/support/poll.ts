/** Polls `check` until it returns true; resolves with the milliseconds it took, or throws at the deadline. */
export async function pollUntil(what: string, check: () => boolean | Promise<boolean>, { timeoutMs = 30_000, everyMs = 50 } = {}): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
