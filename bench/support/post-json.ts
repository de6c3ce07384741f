import { request as httpRequest, type Agent } from 'node:http';

/** A POST answered with another status than 200: its status and problem code. */
export class Refused extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(`${status} ${code}`);
  }
}

/**
 * POSTs JSON with node:http over a keep-alive agent (fetch took most of a core for the client
 * alone on this 2-core machine); resolves on 200, rejects with `Refused` otherwise.
 */
export function postJson(agent: Agent, url: string, path: string, body: unknown): Promise<void> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${url}${path}`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString()));
      response.on('end', () => {
        if (response.statusCode === 200) resolve();
        else reject(new Refused(response.statusCode ?? 0, text.startsWith('{') ? String((JSON.parse(text) as { code?: unknown }).code) : text.slice(0, 60)));
      });
    });
    request.on('error', reject);
    request.end(payload);
  });
}
