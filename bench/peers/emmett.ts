// Peer benchmark: Emmett's SQLite event store (emmett-sqlite 0.42.4 on node-sqlite3) running the
// "bank deposits" workload through Emmett's own command handling (DeciderCommandHandler: read the
// stream, decide, append with expectedStreamVersion), checked for correctness afterwards.
//
// Configurations, as emmett-sqlite builds them (dist/index.js, SQLiteConnectionPool):
// - connection per call: getSQLiteEventStore({ fileName }) opens a new sqlite3.Database for every
//   store call (aggregateStream and appendToStream each get their own) and closes it afterwards.
// - shared connection: getSQLiteEventStore({ fileName, connectionOptions: { singleton: true,
//   connection } }) routes every call through one connection. Its withTransaction only issues
//   BEGIN IMMEDIATE/COMMIT at nesting depth 0, so concurrent commands share one open transaction.
// Durability: every connection runs `PRAGMA journal_mode = WAL`; synchronous is left at SQLite's
// default (FULL) and busy_timeout at node-sqlite3's 1000 ms. Both are read back at run time.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeciderCommandHandler,
  IllegalStateError,
  isExpectedVersionConflictError,
  type Command,
  type Event,
} from '@event-driven-io/emmett';
import {
  getSQLiteEventStore,
  messagesTable,
  sqliteConnection,
  streamsTable,
  type SQLiteConnection,
  type SQLiteEventStore,
} from '@event-driven-io/emmett-sqlite';

export interface PeerResult {
  name: string;
  config: string;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  correct: boolean;
  notes: string;
}

// ---- the account aggregate, as an Emmett decider ------------------------------------------------

// The command id travels in event metadata so the check can tie every stored event to its command.
type CommandMeta = { commandId: string };
type AccountOpened = Event<'AccountOpened', { owner: string }, CommandMeta>;
type Deposited = Event<'Deposited', { amount: number }, CommandMeta>;
type AccountEvent = AccountOpened | Deposited;
type OpenAccount = Command<'OpenAccount', { owner: string } & CommandMeta>;
type Deposit = Command<'Deposit', { amount: number } & CommandMeta>;
type AccountCommand = OpenAccount | Deposit;
type Account = { balance: number; opened: boolean };

const streamPrefix = 'account-';

const handleAccount = DeciderCommandHandler<Account, AccountCommand, AccountEvent>({
  mapToStreamId: (id) => `${streamPrefix}${id}`,
  initialState: () => ({ balance: 0, opened: false }),
  evolve: (state, event) => {
    switch (event.type) {
      case 'AccountOpened':
        return { ...state, opened: true };
      case 'Deposited':
        return { ...state, balance: state.balance + event.data.amount };
    }
  },
  decide: (command, state) => {
    const metadata = { commandId: command.data.commandId };
    switch (command.type) {
      case 'OpenAccount':
        if (state.opened) throw new IllegalStateError('account already opened');
        return { type: 'AccountOpened', data: { owner: command.data.owner }, metadata };
      case 'Deposit':
        if (!state.opened) throw new IllegalStateError('account not opened');
        return { type: 'Deposited', data: { amount: command.data.amount }, metadata };
    }
  },
});

// ---- stores -------------------------------------------------------------------------------------

type StoreMode = 'connection-per-call' | 'shared-connection';

interface OpenedStore {
  store: SQLiteEventStore;
  close: () => void;
}

function openStore(fileName: string, mode: StoreMode): OpenedStore {
  if (mode === 'connection-per-call') return { store: getSQLiteEventStore({ fileName }), close: () => {} };
  const connection = sqliteConnection({ fileName });
  const store = getSQLiteEventStore({ fileName, connectionOptions: { singleton: true, connection } });
  return { store, close: () => connection.close() };
}

function freshFile(dir: string, name: string): string {
  const fileName = join(dir, `${name}.sqlite`);
  for (const suffix of ['', '-wal', '-shm']) rmSync(fileName + suffix, { force: true });
  return fileName;
}

async function withConnection<T>(fileName: string, use: (connection: SQLiteConnection) => Promise<T>): Promise<T> {
  const connection = sqliteConnection({ fileName });
  try {
    return await use(connection);
  } finally {
    connection.close();
  }
}

async function describeDurability(fileName: string): Promise<string> {
  return withConnection(fileName, async (connection) => {
    const journal = await connection.querySingle<{ journal_mode: string }>('PRAGMA journal_mode');
    const synchronous = await connection.querySingle<{ synchronous: number }>('PRAGMA synchronous');
    const busy = await connection.querySingle<{ timeout: number }>('PRAGMA busy_timeout');
    const syncName = ['OFF', 'NORMAL', 'FULL', 'EXTRA'][synchronous?.synchronous ?? -1] ?? '?';
    return `journal_mode=${journal?.journal_mode ?? '?'} synchronous=${syncName} busy_timeout=${busy?.timeout ?? '?'}ms`;
  });
}

// Opening accounts is setup, not workload: one shared connection, batched into explicit
// transactions (Emmett nests the per-command transactions inside), committed before the run.
async function openAccounts(fileName: string, accounts: number): Promise<void> {
  const connection = sqliteConnection({ fileName });
  const store = getSQLiteEventStore({ fileName, connectionOptions: { singleton: true, connection } });
  try {
    for (let from = 0; from < accounts; from += 500) {
      await connection.withTransaction(async () => {
        for (let i = from; i < Math.min(from + 500, accounts); i++) {
          const command: OpenAccount = { type: 'OpenAccount', data: { owner: `owner-${i}`, commandId: `open-${i}` } };
          await handleAccount(store, String(i), command);
        }
      });
    }
  } finally {
    connection.close();
  }
}

// ---- the deposit loop ---------------------------------------------------------------------------

type Status = 'ok' | 'failed' | 'pending';

class Ledger {
  readonly commands = new Map<string, { account: number; status: Status }>();
  readonly failures = new Map<string, number>();
  ok = 0;

  start(account: number): string {
    const commandId = `dep-${this.commands.size}`;
    this.commands.set(commandId, { account, status: 'pending' });
    return commandId;
  }

  finish(commandId: string, error: unknown): void {
    const entry = this.commands.get(commandId);
    if (entry === undefined) return;
    if (error === undefined) {
      entry.status = 'ok';
      this.ok++;
      return;
    }
    entry.status = 'failed';
    const reason = failureReason(error);
    this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
  }

  get failed(): number {
    let total = 0;
    for (const count of this.failures.values()) total += count;
    return total;
  }

  get pending(): number {
    return this.commands.size - this.ok - this.failed;
  }

  describeFailures(): string {
    return [...this.failures].map(([reason, count]) => `${reason} x${count}`).join(', ');
  }
}

function failureReason(error: unknown): string {
  if (isExpectedVersionConflictError(error)) return 'version conflict';
  if (error instanceof Error) {
    const code = 'code' in error && typeof error.code === 'string' ? error.code : error.name;
    const detail = error.message.replace(/^SQLITE_\w+: /, '');
    return detail && detail !== code ? `${code} (${detail.slice(0, 60)})` : code;
  }
  return String(error);
}

interface LoopOptions {
  store: SQLiteEventStore;
  accounts: number;
  inFlight: number;
  ledger: Ledger;
  /** Called before each command; false stops that worker. */
  shouldIssue: () => boolean;
  onSettled?: (startedAt: number, endedAt: number, ok: boolean) => void;
}

async function depositLoop(options: LoopOptions): Promise<void> {
  const { store, accounts, ledger } = options;
  const worker = async (): Promise<void> => {
    while (options.shouldIssue()) {
      const account = Math.floor(Math.random() * accounts);
      const commandId = ledger.start(account);
      const command: Deposit = { type: 'Deposit', data: { amount: 1, commandId } };
      const startedAt = performance.now();
      let failure: unknown = undefined;
      try {
        await handleAccount(store, String(account), command);
      } catch (error) {
        failure = error ?? new Error('rejected without a reason');
      }
      ledger.finish(commandId, failure);
      options.onSettled?.(startedAt, performance.now(), failure === undefined);
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, worker));
}

// ---- correctness --------------------------------------------------------------------------------

interface MessageRow {
  stream_id: string;
  stream_position: number | string;
  message_type: string;
  message_data: string;
  message_metadata: string;
}

function commandIdOf(metadataJson: string): string | undefined {
  const metadata: unknown = JSON.parse(metadataJson);
  if (typeof metadata !== 'object' || metadata === null || !('commandId' in metadata)) return undefined;
  return typeof metadata.commandId === 'string' ? metadata.commandId : undefined;
}

function amountOf(dataJson: string): number {
  const data: unknown = JSON.parse(dataJson);
  return typeof data === 'object' && data !== null && 'amount' in data && typeof data.amount === 'number' ? data.amount : NaN;
}

/** Reads the committed log through a fresh connection and returns every violation found. */
async function verify(fileName: string, accounts: number, ledger: Ledger): Promise<string[]> {
  const { messages, streams } = await withConnection(fileName, async (connection) => ({
    messages: await connection.query<MessageRow>(
      `SELECT stream_id, stream_position, message_type, message_data, message_metadata
         FROM ${messagesTable.name} WHERE is_archived = FALSE ORDER BY stream_id, stream_position`,
    ),
    streams: await connection.query<{ stream_id: string; stream_position: number | string }>(
      `SELECT stream_id, stream_position FROM ${streamsTable.name} WHERE is_archived = FALSE`,
    ),
  }));

  const expected = new Array<number>(accounts).fill(0);
  for (const { account, status } of ledger.commands.values()) if (status === 'ok') expected[account]!++;

  const balances = new Array<number>(accounts).fill(0);
  const lastPosition = new Map<string, number>();
  const seen = new Set<string>();
  let gaps = 0;
  let forFailed = 0;
  let duplicates = 0;
  let unaccounted = 0;
  let unopened = 0;
  for (const row of messages) {
    const position = Number(row.stream_position);
    const previous = lastPosition.get(row.stream_id) ?? 0;
    if (position !== previous + 1) gaps++;
    lastPosition.set(row.stream_id, position);
    if (position === 1 && row.message_type !== 'AccountOpened') unopened++;
    if (row.message_type !== 'Deposited') continue;

    const commandId = commandIdOf(row.message_metadata);
    const command = commandId === undefined ? undefined : ledger.commands.get(commandId);
    if (commandId === undefined || command === undefined) unaccounted++;
    else if (seen.has(commandId)) duplicates++;
    else if (command.status === 'failed') forFailed++;
    if (commandId !== undefined) seen.add(commandId);
    // Commands abandoned mid-flight (timeout) may or may not have landed; only acknowledged ones count.
    if (command?.status === 'ok') balances[Number(row.stream_id.slice(streamPrefix.length))]! += amountOf(row.message_data);
  }

  let missing = 0;
  for (const [commandId, { status }] of ledger.commands) if (status === 'ok' && !seen.has(commandId)) missing++;
  const wrongBalances = balances.filter((balance, account) => balance !== expected[account]).length;
  const unopenedStreams = accounts - [...lastPosition.keys()].length + unopened;
  let bookkeeping = 0;
  for (const stream of streams) if (Number(stream.stream_position) !== (lastPosition.get(stream.stream_id) ?? 0)) bookkeeping++;

  const problems: string[] = [];
  if (forFailed > 0) problems.push(`${forFailed} events stored for failed commands`);
  if (missing > 0) problems.push(`${missing} acknowledged deposits have no committed event`);
  if (duplicates > 0) problems.push(`${duplicates} duplicate events`);
  if (unaccounted > 0) problems.push(`${unaccounted} events from no issued command`);
  if (wrongBalances > 0) problems.push(`deposit sum != acknowledged deposits on ${wrongBalances} accounts`);
  if (gaps > 0) problems.push(`${gaps} stream-position gaps`);
  if (unopenedStreams > 0) problems.push(`${unopenedStreams} accounts without AccountOpened first`);
  // emmett-sqlite bumps emt_streams.stream_position before its version check and commits the bump
  // when the check fails, after which every append to that stream conflicts.
  if (bookkeeping > 0) problems.push(`${bookkeeping} streams whose emt_streams position disagrees with their events`);
  return problems;
}

// ---- probes -------------------------------------------------------------------------------------

const settleGraceMs = 2_000;

async function within<T>(promise: Promise<T>, ms: number): Promise<{ settled: true; value: T } | { settled: false }> {
  const abort = new AbortController();
  try {
    return await Promise.race([
      promise.then((value) => ({ settled: true as const, value })),
      sleep(ms, undefined, { signal: abort.signal }).then(() => ({ settled: false as const })),
    ]);
  } finally {
    abort.abort();
  }
}

// emmett-sqlite's withTransaction console.logs every error before rethrowing it; the failing
// configurations produce one per command.
async function withEmmettErrorLogsMuted<T>(run: () => Promise<T>): Promise<T> {
  const log = console.log;
  console.log = (...args: unknown[]) => {
    if (args.length === 1 && args[0] instanceof Error) return;
    log(...args);
  };
  try {
    return await run();
  } finally {
    console.log = log;
  }
}

interface ProbeSpec {
  label: string;
  mode: StoreMode;
  inFlight: number;
}

async function probe(
  spec: ProbeSpec,
  options: { dir: string; accounts: number; commands: number; timeoutMs: number },
): Promise<string> {
  const fileName = freshFile(options.dir, `emmett-probe-${spec.label}`);
  await openAccounts(fileName, options.accounts);
  const { store, close } = openStore(fileName, spec.mode);
  const ledger = new Ledger();
  let stopped = false;
  const started = performance.now();
  const loop = depositLoop({
    store,
    accounts: options.accounts,
    inFlight: spec.inFlight,
    ledger,
    shouldIssue: () => !stopped && ledger.commands.size < options.commands,
  });

  const run = await within(loop, options.timeoutMs);
  const elapsedS = ((performance.now() - started) / 1000).toFixed(1);
  stopped = true;
  const drained = run.settled || (await within(loop, settleGraceMs)).settled;
  // A hung store may still hold its connection mid-transaction; closing it then would emit an
  // unhandled sqlite3 'error' event, so an abandoned connection is left to the garbage collector.
  if (drained) close();

  const parts: string[] = [];
  if (run.settled) parts.push(`${ledger.commands.size} commands in ${elapsedS}s`);
  else parts.push(`timed out after ${options.timeoutMs}ms with ${ledger.ok + ledger.failed}/${options.commands} commands settled`);
  if (!drained) parts.push(`${ledger.pending} still pending (abandoned)`);
  parts.push(ledger.failed > 0 ? `failed ${ledger.failed}/${ledger.commands.size}: ${ledger.describeFailures()}` : 'no failures');
  const check = await within(verify(fileName, options.accounts, ledger), options.timeoutMs);
  if (!check.settled) parts.push('verification timed out');
  else parts.push(check.value.length === 0 ? 'correct' : `INCORRECT: ${check.value.join('; ')}`);
  return parts.join('; ');
}

export async function probeEmmettConfigurations(options: {
  dir: string;
  accounts: number;
  inFlight: number;
  commands: number;
  timeoutMs: number;
}): Promise<{ config: string; outcome: string }[]> {
  const specs: ProbeSpec[] = [
    { label: 'default', mode: 'connection-per-call', inFlight: options.inFlight },
    { label: 'shared', mode: 'shared-connection', inFlight: options.inFlight },
    { label: 'shared-1', mode: 'shared-connection', inFlight: 1 },
  ];
  const results: { config: string; outcome: string }[] = [];
  for (const spec of specs) {
    const config = `${spec.mode === 'connection-per-call' ? 'default (new connection per store call)' : 'one shared connection'}, ${spec.inFlight} in flight`;
    let outcome: string;
    try {
      outcome = await withEmmettErrorLogsMuted(() => probe(spec, options));
    } catch (error) {
      outcome = `probe crashed: ${failureReason(error)}`;
    }
    results.push({ config, outcome });
  }
  return results;
}

// ---- benchmark ----------------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

/**
 * Runs the fastest configuration that passes the correctness check: one shared connection with a
 * single command in flight. More in flight on a shared connection interleaves transactions, and a
 * connection per call at concurrency fails with SQLITE_BUSY (see probeEmmettConfigurations).
 */
export async function benchEmmettBank(options: {
  dir: string;
  accounts: number;
  inFlight: number;
  durationMs: number;
  warmupMs: number;
}): Promise<PeerResult> {
  const inFlight = 1;
  const fileName = freshFile(options.dir, 'emmett-bench');
  const setupStarted = performance.now();
  await openAccounts(fileName, options.accounts);
  const setupMs = performance.now() - setupStarted;

  const { store, close } = openStore(fileName, 'shared-connection');
  const ledger = new Ledger();
  const latencies: number[] = [];
  let measuredOk = 0;
  const measureFrom = performance.now() + options.warmupMs;
  const measureUntil = measureFrom + options.durationMs;
  let lastSettled = measureFrom;
  try {
    await depositLoop({
      store,
      accounts: options.accounts,
      inFlight,
      ledger,
      shouldIssue: () => performance.now() < measureUntil,
      onSettled: (startedAt, endedAt, ok) => {
        if (startedAt < measureFrom) return;
        lastSettled = endedAt;
        if (!ok) return;
        measuredOk++;
        latencies.push(endedAt - startedAt);
      },
    });
  } finally {
    close();
  }

  const problems = await verify(fileName, options.accounts, ledger);
  const durability = await describeDurability(fileName);
  latencies.sort((a, b) => a - b);
  const requested = options.inFlight === inFlight ? '' : ` (requested ${options.inFlight}: not correct on Emmett)`;
  const notes = [
    `DeciderCommandHandler, no retries (Emmett default)`,
    `${ledger.ok} deposits acknowledged, ${ledger.failed} failed${ledger.failed > 0 ? ` (${ledger.describeFailures()})` : ''}`,
    durability,
    `${options.accounts} accounts opened in ${(setupMs / 1000).toFixed(1)}s (setup, unmeasured)`,
    problems.length === 0 ? 'verified: events match acknowledged commands' : `INCORRECT: ${problems.join('; ')}`,
  ].join('; ');
  return {
    name: 'emmett-sqlite',
    config: `emmett-sqlite 0.42.4, one shared sqlite3 connection, ${inFlight} in flight${requested}`,
    opsPerSec: (measuredOk / Math.max(1, lastSettled - measureFrom)) * 1000,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    correct: problems.length === 0,
    notes,
  };
}
