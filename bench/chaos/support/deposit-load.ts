/**
 * Bounded HTTP load of deposits, each with a unique amount and its own Idempotency-Key, so
 * every request's event can be found (or not) in the log afterwards.
 */
export interface Deposit {
  key: string;
  account: string;
  amount: number;
  /** HTTP status, or undefined when the connection failed (the node died or refused it). */
  status?: number;
  /** The problem's `code` for an error answer. */
  code?: string;
  retryAfter?: string | null;
  latencyMs?: number;
}

export interface DepositLoadOptions {
  url: () => string;
  accounts: readonly string[];
  /** Requests in flight at once: the bound of the load. */
  concurrency: number;
  /** Distinguishes the keys of two loads in one drill. */
  prefix: string;
  /** Unique amounts start here, so two loads on the same accounts never share one. */
  firstAmount?: number;
}

export class DepositLoad {
  readonly sent: Deposit[] = [];
  private running = true;
  private next: number;
  private readonly workers: Promise<void>[];

  constructor(private readonly options: DepositLoadOptions) {
    this.next = options.firstAmount ?? 1;
    this.workers = Array.from({ length: options.concurrency }, () => this.worker());
  }

  private async worker(): Promise<void> {
    while (this.running) {
      const amount = this.next++;
      const deposit: Deposit = { key: `${this.options.prefix}-${amount}`, account: this.options.accounts[amount % this.options.accounts.length]!, amount };
      this.sent.push(deposit);
      await sendDeposit(this.options.url(), deposit);
      // A refused connection answers at once: do not spin (nor pile up requests to retry) while the node is down.
      if (deposit.status === undefined) await new Promise((resolve) => setTimeout(resolve, 250));
      else if (deposit.status >= 500) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Stops sending and waits for every request in flight to answer. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }

  count(predicate: (deposit: Deposit) => boolean): number {
    return this.sent.filter(predicate).length;
  }

  acknowledged(): Deposit[] {
    return this.sent.filter((deposit) => deposit.status === 200);
  }

  /** "200: 812, 503 SHARDLOG_COMMIT_FAILED: 40, no answer: 3" */
  statusSummary(): string {
    const counts = new Map<string, number>();
    for (const deposit of this.sent) {
      const label = deposit.status === undefined ? 'no answer' : deposit.code === undefined ? String(deposit.status) : `${deposit.status} ${deposit.code}`;
      counts.set(label, (counts.get(label) ?? 0) + 1);
    }
    return [...counts].map(([label, count]) => `${label}: ${count}`).join(', ');
  }
}

/** Sends one deposit and records its answer on it. */
export async function sendDeposit(url: string, deposit: Deposit): Promise<void> {
  const started = performance.now();
  try {
    const response = await fetch(`${url}/commands/account/${deposit.account}/deposit`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': deposit.key },
      body: JSON.stringify({ amount: deposit.amount }),
    });
    const text = await response.text();
    deposit.status = response.status;
    deposit.retryAfter = response.headers.get('retry-after');
    const code = response.status !== 200 && (response.headers.get('content-type') ?? '').includes('json') ? (JSON.parse(text) as { code?: string }).code : undefined;
    if (code === undefined) delete deposit.code;
    else deposit.code = code;
  } catch (error) {
    // A refused or reset connection is an answer of its own kind: no status.
    if (!(error instanceof TypeError)) throw error;
    delete deposit.status;
  }
  deposit.latencyMs = performance.now() - started;
}

/** Opens every account (idempotently), so deposits are accepted. */
export async function openAccounts(url: string, accounts: readonly string[]): Promise<void> {
  for (const account of accounts) {
    const response = await fetch(`${url}/commands/account/${account}/open`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': `open-${account}` },
      body: JSON.stringify({ owner: 'chaos' }),
    });
    if (response.status !== 200) throw new Error(`opening ${account} answered ${response.status}: ${await response.text()}`);
  }
}
