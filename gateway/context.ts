import type { FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime/index.ts';
import type { AsyncCommands } from './async-commands.ts';
import { allows, authenticate, type Scope, type TokenEntry } from './auth.ts';
import type { Metrics } from './metrics.ts';
import { makeError } from '../runtime/index.ts';

/** What every route needs: the runtime, metrics, async outcomes, and the auth check. */
export interface GatewayContext {
  runtime: Runtime;
  metrics: Metrics;
  asyncCommands: AsyncCommands;
  /** Throws 401/403 unless the request may use the scope; a no-op when auth is off. */
  authorize(request: FastifyRequest, scope: Scope): void;
}

const authenticated = new WeakMap<FastifyRequest, TokenEntry>();

/** Checks the bearer token as a request arrives, before its body is read (401 before 400/413/415). */
export function authenticator(tokens: readonly TokenEntry[]): (request: FastifyRequest) => void {
  return (request) => {
    if (tokens.length === 0) return;
    authenticated.set(request, authenticate(tokens, request.headers.authorization));
  };
}

export function authorizer(tokens: readonly TokenEntry[]): GatewayContext['authorize'] {
  if (tokens.length === 0) return () => undefined;
  return (request, scope) => {
    const entry = authenticated.get(request) ?? authenticate(tokens, request.headers.authorization);
    if (!allows(entry, scope)) throw makeError('SHARDLOG_FORBIDDEN', `token "${entry.name}" lacks scope ${scope}`, { scope });
  };
}
