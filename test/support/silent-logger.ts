import type { Logger } from '../../runtime/index.ts';

/** A runtime logger that drops everything: tests assert on outcomes, not on log lines. */
export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
