/**
 * Writes docs/errors.md from the registry in runtime/errors.ts (`npm run docs:errors`).
 * test/docs/errors-doc.test.ts fails when the file and the registry disagree, so the page
 * can only change by running this.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { errorCodes } from '../runtime/errors.ts';

export const errorsDocPath = fileURLToPath(new URL('./errors.md', import.meta.url));

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** The whole of docs/errors.md, from the registry alone. */
export function renderErrorsDoc(): string {
  const rows = Object.entries(errorCodes).map(
    ([code, { status, retryable, doc }]) => `| \`${code}\` | ${status} | ${retryable ? 'yes' : 'no'} | ${cell(doc)} |`,
  );
  return `<!-- Generated from runtime/errors.ts by \`npm run docs:errors\`; do not edit by hand. -->
# Errors

Every failure Shardlog reports is a \`ShardlogError\` (exported from \`shardlog\`) with a stable
\`code\`, structured \`data\`, an HTTP \`status\` and \`retryable\`. Codes are never reused once
published. Over HTTP the same error is an \`application/problem+json\` body
\`{ type, title, status, detail, code, …data }\` whose \`type\` is
\`https://shardlog.dev/problems/<code without SHARDLOG_, in kebab case>\` (see [http.md](http.md)).

- \`RetryableError\` (a subclass) is every code marked *retry: yes*: the same command, sent
  again with the same command id, may succeed, and idempotency makes that safe. Over HTTP
  every 503 carries \`Retry-After\` (seconds).
- \`RejectedError\` is \`SHARDLOG_REJECTED\`: the domain refused the command (a decision, not a
  bug). Its \`reason\` (and \`data.code\`) is the domain's own code, e.g. \`insufficient-funds\`;
  over HTTP a 422 problem carries that domain code as \`code\`.
- Match on \`error.code\`, never on the message text.

| code | HTTP | retry? | meaning |
|---|---|---|---|
${rows.join('\n')}
`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(errorsDocPath, renderErrorsDoc());
  process.stdout.write(`wrote ${errorsDocPath} (${Object.keys(errorCodes).length} codes)\n`);
}
