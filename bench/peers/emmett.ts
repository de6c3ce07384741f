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

import { mkdirSync, rmSync } from 'node:fs';
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

// Each command carries an id that its event keeps in metadata, tying every stored event to its command.
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

// Emmett's sqliteConnection() fires `PRAGMA journal_mode = WAL` without waiting for it, so under load
// it can run after the connection's first BEGIN. If the connection does not see the file as WAL yet,
// that fails ("cannot change into wal mode from within a transaction") and, having no callback,
// crashes the process as an unhandled sqlite3 'error' event. So new files are switched to WAL before
// Emmett opens them, and the checks here read without explicit transactions.
async function freshFile(dir: string, name: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const fileName = join(dir, `${name}.sqlite`);
  for (const suffix of ['', '-wal', '-shm']) rmSync(fileName + suffix, { force: true });
  await withConnection(fileName, (connection) => connection.command('PRAGMA journal_mode = WAL'));
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

class Tally {
  private readonly counts = new Map<string, number>();
  total = 0;

  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.total++;
  }

  toString(): string {
    return [...this.counts].map(([key, count]) => `${key} x${count}`).join(', ');
  }
}

type Status = 'ok' | 'failed' | 'pending';

class Ledger {
  readonly commands = new Map<string, { account: number; status: Status }>();
  readonly failures = new Tally();
  ok = 0;
  private frozen = false;

  /** Commands still in flight stay pending: abandoned, their outcome unknown. */
  freeze(): void {
    this.frozen = true;
  }

  start(account: number): string {
    const commandId = `dep-${this.commands.size}`;
    this.commands.set(commandId, { account, status: 'pending' });
    return commandId;
  }

  finish(commandId: string, error: unknown): void {
    const entry = this.commands.get(commandId);
    if (entry === undefined || this.frozen) return;
    if (error === undefined) {
      entry.status = 'ok';
      this.ok++;
    } else {
      entry.status = 'failed';
      this.failures.add(failureReason(error));
    }
  }

  get settled(): number {
    return this.ok + this.failures.total;
  }

  acknowledged(): string[] {
    return [...this.commands].filter(([, { status }]) => status === 'ok').map(([commandId]) => commandId);
  }
}

function failureReason(error: unknown): string {
  if (isExpectedVersionConflictError(error)) return 'version conflict';
  if (error instanceof Error) {
    const code = 'code' in error && typeof error.code === 'string' ? error.code : error.name;
    const detail = error.message.replace(/^SQLITE_\w+: /, '');
    return detail && detail !== code ? `${code} '${detail.slice(0, 60)}'` : code;
  }
  return String(error);
}

interface LoopOptions {
  store: SQLiteEventStore;
  accounts: number;
  inFlight: number;
  ledger: Ledger;
  /** Asked before each command; false retires the worker. */
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
  /** emt_streams' position for the stream, which Emmett's optimistic-concurrency check relies on. */
  head_position: number | string | null;
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

type AckSnapshot = { acked: number; uncommitted: number };

function readCommitted<Row>(fileName: string, query: string): Promise<Row[]> {
  return withConnection(fileName, (connection) => connection.query<Row>(query));
}

/**
 * Acknowledged-means-committed probe: snapshots the acknowledged deposits, then reads what a fresh
 * connection sees as committed. Commits landing between the two only hide violations, so a
 * non-zero count is proof of acknowledgements given before commit.
 */
async function uncommittedAcks(fileName: string, ledger: Ledger): Promise<AckSnapshot | undefined> {
  const acked = ledger.acknowledged();
  try {
    const rows = await readCommitted<{ message_metadata: string }>(
      fileName,
      `SELECT message_metadata FROM ${messagesTable.name} WHERE message_type = 'Deposited'`,
    );
    const committed = new Set(rows.map((row) => commandIdOf(row.message_metadata)));
    return { acked: acked.length, uncommitted: acked.filter((commandId) => !committed.has(commandId)).length };
  } catch {
    // Runs unawaited until the end of the run; a failed check is reported, never an unhandled rejection.
    return undefined;
  }
}

function describeAcks(snapshot: AckSnapshot | undefined): string {
  if (snapshot === undefined) return 'mid-run commit check did not complete';
  if (snapshot.uncommitted === 0) return `all ${snapshot.acked} deposits acknowledged by mid-run were committed`;
  return `${snapshot.uncommitted}/${snapshot.acked} deposits acknowledged by mid-run were not yet committed`;
}

/** Reads the committed log through a fresh connection and returns every violation found. */
async function verify(fileName: string, accounts: number, ledger: Ledger): Promise<string[]> {
  // One statement, so both tables come from the same snapshot even if abandoned commands are
  // still committing.
  const messages = await readCommitted<MessageRow>(
    fileName,
    `SELECT m.stream_id, m.stream_position, s.stream_position AS head_position,
            m.message_type, m.message_data, m.message_metadata
       FROM ${messagesTable.name} m
       LEFT JOIN ${streamsTable.name} s ON s.stream_id = m.stream_id AND s.is_archived = FALSE
      WHERE m.is_archived = FALSE
      ORDER BY m.stream_id, m.stream_position`,
  );

  const expected = new Array<number>(accounts).fill(0);
  for (const { account, status } of ledger.commands.values()) if (status === 'ok') expected[account]!++;

  const balances = new Array<number>(accounts).fill(0);
  const lastPosition = new Map<string, number>();
  const headPosition = new Map<string, number>();
  const seen = new Set<string>();
  let gaps = 0;
  let forFailed = 0;
  let duplicates = 0;
  let unaccounted = 0;
  let notOpenedFirst = 0;
  for (const row of messages) {
    const position = Number(row.stream_position);
    if (position !== (lastPosition.get(row.stream_id) ?? 0) + 1) gaps++;
    lastPosition.set(row.stream_id, position);
    headPosition.set(row.stream_id, Number(row.head_position ?? NaN));
    if (position === 1 && row.message_type !== 'AccountOpened') notOpenedFirst++;
    if (row.message_type !== 'Deposited') continue;

    const commandId = commandIdOf(row.message_metadata);
    const command = commandId === undefined ? undefined : ledger.commands.get(commandId);
    if (commandId === undefined || command === undefined) unaccounted++;
    else if (seen.has(commandId)) duplicates++;
    else if (command.status === 'failed') forFailed++;
    if (commandId !== undefined) seen.add(commandId);
    // Commands abandoned in flight (timeout) may or may not have landed; only acknowledged ones count.
    if (command?.status === 'ok') balances[Number(row.stream_id.slice(streamPrefix.length))]! += amountOf(row.message_data);
  }

  const missing = ledger.acknowledged().filter((commandId) => !seen.has(commandId)).length;
  const wrongBalances = balances.filter((balance, account) => balance !== expected[account]).length;
  const unopened = accounts - lastPosition.size + notOpenedFirst;
  const wedged = [...lastPosition].filter(([stream, last]) => headPosition.get(stream) !== last).length;

  const problems: string[] = [];
  if (forFailed > 0) problems.push(`${forFailed} events stored for failed commands`);
  if (missing > 0) problems.push(`${missing} acknowledged deposits have no committed event`);
  if (duplicates > 0) problems.push(`${duplicates} duplicate events`);
  if (unaccounted > 0) problems.push(`${unaccounted} events from no issued command`);
  if (wrongBalances > 0) problems.push(`deposit sum != acknowledged deposits on ${wrongBalances} accounts`);
  if (gaps > 0) problems.push(`${gaps} stream-position gaps`);
  if (unopened > 0) problems.push(`${unopened} accounts without AccountOpened first`);
  // emmett-sqlite bumps emt_streams.stream_position before comparing it with the expected version
  // and commits the bump when the comparison fails; every later append to that stream conflicts.
  if (wedged > 0) problems.push(`${wedged} streams wedged (emt_streams position != their last event, so every later append to them conflicts)`);
  return problems;
}

// ---- probes -------------------------------------------------------------------------------------

const settleGraceMs = 2_000;
const abandonedDrainLimitMs = 60_000;

// Commands a probe abandoned keep sqlite3's (libuv) thread pool busy until they settle, which can
// take tens of seconds; benchEmmettBank waits for them so they do not share the pool with its run.
const abandonedRuns = new Set<Promise<void>>();

function trackAbandoned(run: Promise<void>): void {
  const settled = run.then(
    () => {},
    () => {},
  );
  abandonedRuns.add(settled);
  void settled.then(() => abandonedRuns.delete(settled));
}

type Deadline<T> = { settled: true; value: T } | { settled: false };

async function within<T>(promise: Promise<T>, ms: number): Promise<Deadline<T>> {
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

// emmett-sqlite's withTransaction console.logs every error before rethrowing it (one per failed
// command here), and when BEGIN fails its ROLLBACK fails too and replaces the original error, so the
// logged errors are the only record of the real cause. They are tallied instead of printed.
async function tallyingEmmettErrorLogs<T>(tally: Tally, run: () => Promise<T>): Promise<T> {
  const log = console.log;
  console.log = (...args: unknown[]) => {
    if (args.length === 1 && args[0] instanceof Error) tally.add(failureReason(args[0]));
    else log(...args);
  };
  try {
    return await run();
  } finally {
    console.log = log;
  }
}

interface ProbeSpec {
  mode: StoreMode;
  inFlight: number;
}

interface ProbeOptions {
  dir: string;
  accounts: number;
  commands: number;
  timeoutMs: number;
}

async function probe(spec: ProbeSpec, options: ProbeOptions): Promise<string> {
  const logged = new Tally();
  return tallyingEmmettErrorLogs(logged, () => runProbe(spec, options, logged));
}

async function runProbe(spec: ProbeSpec, options: ProbeOptions, logged: Tally): Promise<string> {
  const fileName = await freshFile(options.dir, `emmett-probe-${spec.mode}-${spec.inFlight}`);
  await openAccounts(fileName, options.accounts);
  const { store, close } = openStore(fileName, spec.mode);
  const ledger = new Ledger();
  let stopped = false;
  let ackCheck: Promise<Deadline<AckSnapshot | undefined>> | undefined;
  const started = performance.now();

  const running = depositLoop({
    store,
    accounts: options.accounts,
    inFlight: spec.inFlight,
    ledger,
    shouldIssue: () => !stopped && ledger.commands.size < options.commands,
    onSettled: () => {
      if (ackCheck === undefined && ledger.settled >= options.commands / 2) {
        ackCheck = within(uncommittedAcks(fileName, ledger), options.timeoutMs);
      }
    },
  });
  const run = await within(running, options.timeoutMs);
  stopped = true;
  const drained = run.settled || (await within(running, settleGraceMs)).settled;
  ledger.freeze();
  const elapsedS = ((performance.now() - started) / 1000).toFixed(1);
  // A hung store may be mid-transaction; closing its connection then makes sqlite3 emit an
  // 'error' event nobody listens to, so an abandoned connection is left to the garbage collector.
  if (drained) close();
  else trackAbandoned(running);

  const parts: string[] = [];
  parts.push(
    run.settled
      ? `${ledger.commands.size} commands in ${elapsedS}s`
      : `${ledger.settled}/${options.commands} commands settled within the ${options.timeoutMs}ms timeout` +
          (drained ? '' : `, ${ledger.commands.size - ledger.settled} abandoned in flight`),
  );
  parts.push(ledger.failures.total > 0 ? `failed ${ledger.failures.total}: ${ledger.failures.toString()}` : 'no failures');
  if (logged.total > 0) parts.push(`Emmett logged ${logged.toString()}`);
  const acks = ackCheck === undefined ? undefined : await ackCheck;
  const ackSnapshot = acks?.settled ? acks.value : undefined;
  if (acks !== undefined) parts.push(describeAcks(ackSnapshot));
  const check = await within(verify(fileName, options.accounts, ledger), options.timeoutMs);
  const problems = check.settled ? check.value : ['verification timed out'];
  if (ackSnapshot !== undefined && ackSnapshot.uncommitted > 0) problems.unshift('acknowledged before commit');

  const verdict = !run.settled ? 'HUNG' : problems.length > 0 ? 'INCORRECT' : ledger.failures.total > 0 ? 'FAILING' : 'correct';
  const detail = problems.length > 0 ? `; ${problems.join('; ')}` : run.settled ? '' : '; committed data consistent';
  return `${verdict}: ${parts.join('; ')}${detail}`;
}

function describeConfig({ mode, inFlight }: ProbeSpec): string {
  const store = mode === 'connection-per-call' ? 'default (new connection per store call)' : 'one shared connection';
  return `${store}, ${inFlight} in flight`;
}

/**
 * Runs each configuration for `commands` deposits and reports what happened. The default
 * configuration runs last because, once abandoned, its commands keep sqlite3 busy in the
 * background (benchEmmettBank waits for them) and may still print Emmett's error logs.
 */
export async function probeEmmettConfigurations(options: {
  dir: string;
  accounts: number;
  inFlight: number;
  commands: number;
  timeoutMs: number;
}): Promise<{ config: string; outcome: string }[]> {
  const reported: ProbeSpec[] = [
    { mode: 'connection-per-call', inFlight: options.inFlight },
    { mode: 'shared-connection', inFlight: options.inFlight },
    { mode: 'shared-connection', inFlight: 1 },
    { mode: 'connection-per-call', inFlight: 1 },
  ];
  const outcomes = new Map<ProbeSpec, string>();
  for (const spec of [...reported.slice(1), reported[0]!]) {
    try {
      outcomes.set(spec, await probe(spec, options));
    } catch (error) {
      outcomes.set(spec, `probe crashed: ${failureReason(error)}`);
    }
  }
  return reported.map((spec) => ({ config: describeConfig(spec), outcome: outcomes.get(spec) ?? 'not run' }));
}

// ---- benchmark ----------------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

async function drainAbandonedRuns(): Promise<string | undefined> {
  if (abandonedRuns.size === 0) return undefined;
  const started = performance.now();
  const drained = await tallyingEmmettErrorLogs(new Tally(), () => within(Promise.all(abandonedRuns), abandonedDrainLimitMs));
  const waitedS = ((performance.now() - started) / 1000).toFixed(1);
  return drained.settled
    ? `waited ${waitedS}s for commands abandoned by the probes to settle before starting`
    : `commands abandoned by the probes were still running after ${waitedS}s and ran alongside`;
}

/**
 * Runs the fastest configuration that passes the correctness check: one shared connection with a
 * single command in flight, whatever `inFlight` asks for (see probeEmmettConfigurations for why).
 */
export async function benchEmmettBank(options: {
  dir: string;
  accounts: number;
  inFlight: number;
  durationMs: number;
  warmupMs: number;
}): Promise<PeerResult> {
  const inFlight = 1;
  const drainNote = await drainAbandonedRuns();
  const fileName = await freshFile(options.dir, 'emmett-bench');
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
  let ackCheck: Promise<AckSnapshot | undefined> | undefined;
  try {
    await depositLoop({
      store,
      accounts: options.accounts,
      inFlight,
      ledger,
      shouldIssue: () => performance.now() < measureUntil,
      onSettled: (startedAt, endedAt, ok) => {
        if (ackCheck === undefined && endedAt >= measureFrom + options.durationMs / 2) ackCheck = uncommittedAcks(fileName, ledger);
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

  const acks = await ackCheck;
  const problems = await verify(fileName, options.accounts, ledger);
  if (acks !== undefined && acks.uncommitted > 0) problems.unshift('acknowledged before commit');
  latencies.sort((a, b) => a - b);
  const requested = options.inFlight === inFlight ? '' : ` (${options.inFlight} requested; more than 1 is not correct on Emmett)`;
  const notes = [
    'DeciderCommandHandler with Emmett defaults (no version-conflict retries)',
    `${ledger.ok} deposits acknowledged, ${ledger.failures.total} failed${ledger.failures.total > 0 ? ` (${ledger.failures.toString()})` : ''}`,
    await describeDurability(fileName),
    describeAcks(acks),
    `${options.accounts} accounts opened in ${(setupMs / 1000).toFixed(1)}s (setup, unmeasured)`,
    ...(drainNote === undefined ? [] : [drainNote]),
    problems.length === 0 ? 'verified: committed events match acknowledged commands' : `INCORRECT: ${problems.join('; ')}`,
  ].join('; ');
  return {
    name: 'emmett-sqlite',
    config: `emmett-sqlite 0.42.4 on sqlite3, one shared connection, ${inFlight} in flight${requested}`,
    opsPerSec: (measuredOk / Math.max(1, lastSettled - measureFrom)) * 1000,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    correct: problems.length === 0,
    notes,
  };
}
