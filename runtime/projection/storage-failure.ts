import Database from 'better-sqlite3';

/**
 * A failure of the view file itself (disk full, I/O error, locked), not of a projection's
 * handler: the event is not at fault, so it is tried again later and never parked. A handler's
 * own SQL mistakes (SQLITE_ERROR, SQLITE_CONSTRAINT) are the handler's failures.
 */
export function isStorageFailure(error: unknown): boolean {
  return error instanceof Database.SqliteError && /^SQLITE_(FULL|IOERR|BUSY|LOCKED|NOMEM|CANTOPEN|READONLY)/.test(error.code);
}
