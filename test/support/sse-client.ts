export interface SseMessage {
  id?: string;
  event?: string;
  data?: { aggregate: string; id: string; type: string; version: number; position: string; data: unknown };
  comment?: string;
}

/** A minimal SSE client over fetch: collects parsed messages until `close`. */
export async function subscribe(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  const messages: SseMessage[] = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let ended = false;
  const pump = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value as Uint8Array, { stream: true });
        let boundary: number;
        while ((boundary = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, boundary);
          buffer = buffer.slice(boundary + 2);
          const message: SseMessage = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) message.comment = line.slice(1).trim();
            else if (line.startsWith('id: ')) message.id = line.slice(4);
            else if (line.startsWith('event: ')) message.event = line.slice(7);
            else if (line.startsWith('data: ')) message.data = JSON.parse(line.slice(6)) as NonNullable<SseMessage['data']>;
          }
          messages.push(message);
        }
      }
    } catch {
      // aborted
    }
    ended = true;
  })();
  const events = () => messages.filter((message) => message.data !== undefined);
  return {
    response,
    messages,
    events,
    get ended() {
      return ended;
    },
    close: async () => {
      controller.abort();
      await pump;
    },
  };
}
