import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/free-port.ts';
import { http } from '../support/node.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';
import { spawnUnreaped, type UnreapedProcess } from '../support/unreaped-process.ts';

const cli = fileURLToPath(new URL('../../cli/shardlog.mjs', import.meta.url));
const rounds = 20;
const acknowledgedPerRound = 8;
const accounts = ['restart-0', 'restart-1', 'restart-2'];

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

interface Deposit {
  account: string;
  amount: number;
  acknowledged: boolean;
}

describe('a node restarted at once after SIGKILL under HTTP load', () => {
  it(`serves after each of ${rounds} restarts, and keeps every acknowledged command exactly once`, { timeout: 900_000 }, async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;

    // Each server's parent is held still once it is killed, so the restart meets the dead
    // server as an unreaped zombie, as under a supervisor that has not called wait() yet.
    const start = async (round: number): Promise<UnreapedProcess> => {
      const server = await spawnUnreaped(process.execPath, [cli, 'start', '--port', String(port), '--host', '127.0.0.1', '--data', temp.dir, '--partitions', '4', '--shards', '1', '--log-level', 'warn']);
      cleanup.push(server.reap);
      await waitFor(
        async () => {
          if (!server.running()) throw new Error(`round ${round}: the restarted node exited: ${server.output()}`);
          return fetch(`${base}/readyz`).then(
            (response) => response.ok,
            () => false,
          );
        },
        { timeoutMs: 120_000, everyMs: 20 },
      );
      return server;
    };

    let server = await start(0);
    for (const account of accounts) expect((await http(`${base}/commands/account/${account}/open`, { method: 'POST', json: { owner: 'r' } })).status).toBe(200);

    // A unique amount identifies each deposit's event in the log.
    const deposits: Deposit[] = [];
    const restartMs: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      let acknowledgedThisRound = 0;
      let killing = false;
      const loop = async (): Promise<void> => {
        for (;;) {
          const deposit: Deposit = { account: accounts[deposits.length % accounts.length]!, amount: deposits.length + 1, acknowledged: false };
          deposits.push(deposit);
          let status: number;
          try {
            status = (await http(`${base}/commands/account/${deposit.account}/deposit`, { method: 'POST', json: { amount: deposit.amount } })).status;
          } catch (error) {
            if (!killing) throw error;
            return; // killed under this request: it may or may not have committed
          }
          expect(status, `deposit ${deposit.amount}`).toBe(200);
          deposit.acknowledged = true;
          acknowledgedThisRound += 1;
        }
      };
      const loops = Array.from({ length: 3 }, loop);
      await waitFor(() => acknowledgedThisRound >= acknowledgedPerRound, { timeoutMs: 30_000 });
      const killed = server;
      killing = true;
      await killed.killAndLeaveUnreaped();
      const killedAt = performance.now();
      await Promise.all(loops);
      server = await start(round);
      restartMs.push(performance.now() - killedAt);
      await killed.reap();
    }

    const depositsOf = async (account: string) => {
      const answer = await http(`${base}/aggregates/account/${account}/events?limit=1000`);
      expect(answer.status).toBe(200);
      return (answer.body as { events: { type: string; version: number; data: { amount?: number } }[] }).events;
    };
    const committed = new Map<number, number>();
    for (const account of accounts) {
      const events = await depositsOf(account);
      expect(
        events.map((event) => event.version),
        account,
      ).toEqual(events.map((_, index) => index + 1));
      for (const event of events) if (event.type === 'Deposited') committed.set(event.data.amount!, (committed.get(event.data.amount!) ?? 0) + 1);
    }
    const acknowledged = deposits.filter((deposit) => deposit.acknowledged);
    expect(acknowledged.length).toBeGreaterThanOrEqual(rounds * acknowledgedPerRound);
    for (const deposit of acknowledged) expect(committed.get(deposit.amount), `deposit ${deposit.amount}`).toBe(1);
    for (const [amount, count] of committed) expect(count, `deposit ${amount}`).toBe(1);
    console.log(`${rounds} restarts, ${acknowledged.length} deposits acknowledged; from kill to serving: median ${Math.round(restartMs.sort((a, b) => a - b)[rounds >> 1]!)} ms, slowest ${Math.round(restartMs.at(-1)!)} ms`);
  });
});
