/**
 * The CLI's way into a running node: its admin HTTP routes. A problem+json answer becomes
 * an AdminError carrying the problem's one-line detail.
 */
export class AdminError extends Error {}

export interface AdminTarget {
  url: string;
  token?: string | undefined;
}

export async function adminCall<T>(target: AdminTarget, method: 'GET' | 'POST', path: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch(new URL(path, target.url), {
      method,
      headers: target.token === undefined ? {} : { authorization: `Bearer ${target.token}` },
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    // fetch says only "fetch failed"; the reason (ECONNREFUSED, bad port, …) is its cause.
    const cause: unknown = error instanceof Error && error.cause instanceof Error ? error.cause : error;
    const reason = cause instanceof Error ? ((cause as NodeJS.ErrnoException).code ?? cause.message) : String(cause);
    throw new AdminError(`cannot reach a node at ${target.url} (${reason}); is \`shardlog start\` running there? (--url or SHARDLOG_URL)`);
  }
  const text = await response.text();
  const body = text === '' ? undefined : (JSON.parse(text) as unknown);
  if (!response.ok) {
    const problem = body as { detail?: string; title?: string; code?: string } | undefined;
    throw new AdminError(`${response.status} ${problem?.code ?? ''}: ${problem?.detail ?? problem?.title ?? text}`.replace(/ {2}/g, ' '));
  }
  return body as T;
}
