/** One command sent over HTTP and what came back. */
export interface CommandAnswer {
  /** HTTP status, or undefined when the connection failed (the node died or refused it). */
  status?: number;
  /** The problem's `code` for an error answer. */
  code?: string;
  retryAfter: string | null;
  /** The aggregate version a 200 reports. */
  version?: number;
  latencyMs: number;
}

/** POSTs `/commands/<aggregate>/<id>/<command>` with an Idempotency-Key. */
export async function postCommand(url: string, path: { aggregate: string; id: string; command: string }, input: unknown, key: string): Promise<CommandAnswer> {
  const started = performance.now();
  try {
    const response = await fetch(`${url}/commands/${path.aggregate}/${path.id}/${path.command}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(input),
    });
    const body = (response.headers.get('content-type') ?? '').includes('json') ? ((await response.json()) as { code?: string; version?: number }) : (await response.text(), {});
    const answer: CommandAnswer = { status: response.status, retryAfter: response.headers.get('retry-after'), latencyMs: performance.now() - started };
    if (response.status !== 200 && body.code !== undefined) answer.code = body.code;
    if (response.status === 200 && body.version !== undefined) answer.version = body.version;
    return answer;
  } catch (error) {
    // A refused or reset connection is an answer of its own kind: no status.
    if (!(error instanceof TypeError)) throw error;
    return { retryAfter: null, latencyMs: performance.now() - started };
  }
}
