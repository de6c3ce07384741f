/** Counts the `: heartbeat` comments of a `GET /events` stream as they arrive, until stopped. */
export class SseHeartbeats {
  /** performance.now() of each heartbeat received. */
  readonly at: number[] = [];
  private readonly abort = new AbortController();
  private readonly reading: Promise<void>;

  constructor(url: string) {
    this.reading = this.read(url);
  }

  private async read(url: string): Promise<void> {
    try {
      const response = await fetch(`${url}/events?from=now`, { signal: this.abort.signal });
      if (response.body === null) return;
      const decoder = new TextDecoder();
      let text = '';
      for await (const chunk of response.body) {
        text += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let index = text.indexOf(': heartbeat\n'); index !== -1; index = text.indexOf(': heartbeat\n')) {
          this.at.push(performance.now());
          text = text.slice(index + 1);
        }
        text = text.slice(-64);
      }
    } catch (error) {
      // Stopping aborts the read; a node that goes away ends it: both only end the count.
      if (!(error instanceof Error) || (error.name !== 'AbortError' && !(error instanceof TypeError))) throw error;
    }
  }

  count(since = 0): number {
    return this.at.filter((time) => time >= since).length;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.reading;
  }
}
