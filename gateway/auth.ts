import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { makeError } from '../runtime/index.ts';

/**
 * Bearer tokens and their scopes. A scope is `admin` (everything), `read` (every GET of
 * state, events, commands and views), `metrics`, or `command:<aggregate>:<command>` where
 * either part may be `*`.
 */
const tokenFile = z.object({
  tokens: z
    .array(
      z.object({
        name: z.string().min(1).optional(),
        token: z.string().min(16, 'a token must be at least 16 characters'),
        scopes: z.array(z.string().regex(/^(admin|read|metrics|command:[\w*-]+:[\w*-]+)$/, 'unknown scope')).min(1),
      }),
    )
    .min(1),
});

export interface TokenEntry {
  name: string;
  digest: Buffer;
  scopes: readonly string[];
}

export type Scope = 'read' | 'metrics' | 'admin' | `command:${string}:${string}`;

/** Reads tokens from a JSON file (`{ "tokens": [{ "token", "scopes", "name"? }] }`) or the same JSON in a string. */
export function parseTokens(json: string, source: string): TokenEntry[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    throw makeError('SHARDLOG_INVALID_CONFIG', `${source}: not JSON (${(error as Error).message})`);
  }
  const parsed = tokenFile.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw makeError('SHARDLOG_INVALID_CONFIG', `${source}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? 'invalid'}`.trim());
  }
  return parsed.data.tokens.map((entry, index) => ({ name: entry.name ?? `token-${index + 1}`, digest: digest(entry.token), scopes: entry.scopes }));
}

export function loadTokensFile(path: string): TokenEntry[] {
  return parseTokens(readFileSync(path, 'utf8'), path);
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** The entry a bearer token belongs to; compared in constant time over digests. */
export function authenticate(tokens: readonly TokenEntry[], authorization: string | undefined): TokenEntry {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (match === null) throw makeError('SHARDLOG_UNAUTHENTICATED', 'send Authorization: Bearer <token>');
  const presented = digest(match[1]!);
  let found: TokenEntry | undefined;
  for (const entry of tokens) if (timingSafeEqual(entry.digest, presented)) found = entry;
  if (found === undefined) throw makeError('SHARDLOG_UNAUTHENTICATED', 'unknown bearer token');
  return found;
}

export function allows(entry: TokenEntry, needed: Scope): boolean {
  return entry.scopes.some((scope) => scope === 'admin' || scope === needed || commandScopeMatches(scope, needed));
}

function commandScopeMatches(scope: string, needed: string): boolean {
  if (!scope.startsWith('command:') || !needed.startsWith('command:')) return false;
  const [, aggregate, command] = scope.split(':');
  const [, wantedAggregate, wantedCommand] = needed.split(':');
  return (aggregate === '*' || aggregate === wantedAggregate) && (command === '*' || command === wantedCommand);
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
