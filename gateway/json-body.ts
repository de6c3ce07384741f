import type { FastifyInstance } from 'fastify';
import secureJson from 'secure-json-parse';
import { makeError } from '../runtime/index.ts';

export const maxJsonDepth = 64;

/**
 * Replaces Fastify's JSON parser: same poisoning protection (a `__proto__` or `constructor`
 * key is refused, not stripped), plus a nesting limit so no body can make later stages
 * recurse without bound.
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  // Only JSON bodies exist here: anything else is refused with 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(/^application\/(?:[\w.+-]+\+)?json\s*(?:;.*)?$/i, { parseAs: 'string' }, (request, body, done) => {
    const charset = /;\s*charset\s*=\s*"?([\w-]+)/i.exec(request.headers['content-type'] ?? '')?.[1];
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      done(makeError('SHARDLOG_UNSUPPORTED_MEDIA_TYPE', `JSON bodies must be UTF-8, not ${charset}`), undefined);
      return;
    }
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    let parsed: unknown;
    try {
      parsed = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
    } catch (error) {
      done(makeError('SHARDLOG_MALFORMED_REQUEST', `malformed JSON body: ${(error as Error).message}`), undefined);
      return;
    }
    if (depthExceeds(parsed, maxJsonDepth)) {
      done(makeError('SHARDLOG_MALFORMED_REQUEST', `JSON body nested deeper than ${maxJsonDepth} levels`), undefined);
      return;
    }
    done(null, parsed);
  });
}

/** Iterative, so a hostile body cannot overflow the stack here either. */
function depthExceeds(root: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= limit) return true;
    for (const child of Object.values(value)) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}
