/** Waits until `check` returns true, polling, or fails after the deadline. */
export async function waitFor(check: () => boolean | Promise<boolean>, { timeoutMs = 10_000, everyMs = 10 } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
