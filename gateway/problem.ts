import type { FastifyReply } from 'fastify';
import { errorCodes, makeError, RejectedError, type ErrorCode, type ShardlogError } from '../runtime/index.ts';

/**
 * An RFC 9457 problem document. `code` is stable; for a domain refusal it is the domain's code.
 * The error's data are extension members beside these five, which they can never replace: a
 * client must be able to trust `type`, `status` and `code` whatever a domain puts in its data.
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  [extension: string]: unknown;
}

const problemBase = 'https://shardlog.dev/problems/';

function problemType(code: ErrorCode): string {
  return problemBase + code.replace(/^SHARDLOG_/, '').toLowerCase().replaceAll('_', '-');
}

function title(code: ErrorCode): string {
  const words = code.replace(/^SHARDLOG_/, '').toLowerCase().replaceAll('_', ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function toProblem(error: ShardlogError): Problem {
  if (error instanceof RejectedError) {
    return withExtensions({ type: `${problemBase}rejected`, title: 'Rejected by the domain', status: 422, detail: error.detail || error.reason, code: error.reason }, error.data);
  }
  return withExtensions({ type: problemType(error.code), title: title(error.code), status: errorCodes[error.code].status, detail: error.message, code: error.code }, error.data);
}

const memberNames = new Set(['type', 'title', 'status', 'detail', 'code', '__proto__']);

/** The five members first, then every data field that does not carry one of their names. */
function withExtensions(members: Problem, data: Readonly<Record<string, unknown>>): Problem {
  const problem: Problem = { ...members };
  for (const [name, value] of Object.entries(data)) if (!memberNames.has(name)) problem[name] = value;
  return problem;
}

/** Maps Fastify's own request errors (body limit, content type, JSON) onto our codes. */
export function fromFastifyError(error: { code?: string; statusCode?: number; message: string }): ShardlogError {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return makeError('SHARDLOG_BODY_TOO_LARGE', error.message);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return error.statusCode === 415 ? makeError('SHARDLOG_UNSUPPORTED_MEDIA_TYPE', 'command bodies must be application/json') : makeError('SHARDLOG_MALFORMED_REQUEST', error.message);
    default:
      if (error.statusCode === 413) return makeError('SHARDLOG_BODY_TOO_LARGE', error.message);
      if (error.statusCode === 415) return makeError('SHARDLOG_UNSUPPORTED_MEDIA_TYPE', error.message);
      if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) return makeError('SHARDLOG_MALFORMED_REQUEST', error.message);
      return makeError('SHARDLOG_INTERNAL', 'internal error');
  }
}

export function sendProblem(reply: FastifyReply, error: ShardlogError): FastifyReply {
  const problem = toProblem(error);
  // A 504 that knows when to come back (a view still behind) says so too.
  if (problem.status === 503 || problem.status === 429 || (problem.status === 504 && typeof error.data.retryAfterMs === 'number')) {
    const retryAfterMs = typeof error.data.retryAfterMs === 'number' ? error.data.retryAfterMs : 1_000;
    void reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1_000))));
  }
  return reply.code(problem.status).type('application/problem+json').send(problem);
}

