/**
 * The one logger shape the runtime writes to: pino's (`logger.warn({ partition }, 'message')`),
 * so a pino logger can be passed as it is.
 */
export interface Logger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}
