import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { freePort } from '../support/free-port.ts';
import { http } from '../support/node.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';

const cli = fileURLToPath(new URL('../../cli/shardlog.mjs', import.meta.url));
const cleanup = cleanupAfterEach();

async function startServer(dataDir: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [cli, 'start', '--port', String(port), '--data', dataDir, '--partitions', '8', '--shards', '2', '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  cleanup.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
      return fetch(`http://127.0.0.1:${port}/readyz`).then(
        (response) => response.ok,
        () => false,
      );
    },
    { timeoutMs: 30_000, everyMs: 50 },
  );
  return child;
}

interface Sent {
  key: string;
  account: string;
  amount: number;
  status?: number;
}

describe('a server killed with SIGKILL under HTTP load', () => {
  it('keeps every answered command exactly once; replayed keys apply at most once', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const accounts = Array.from({ length: 10 }, (_, index) => `kill-${index}`);
    const server = await startServer(temp.dir, port);
    for (const account of accounts) expect((await http(`${base}/commands/account/${account}/open`, { method: 'POST', json: { owner: 'k' } })).status).toBe(200);

    // Unique amounts identify each request's event in the log.
    const sent: Sent[] = [];
    let next = 1;
    let answered200 = 0;
    const loop = async () => {
      for (;;) {
        const request: Sent = { key: `kill-key-${next}`, account: accounts[next % accounts.length]!, amount: next };
        next += 1;
        sent.push(request);
        try {
          const answer = await http(`${base}/commands/account/${request.account}/deposit`, { method: 'POST', json: { amount: request.amount }, headers: { 'idempotency-key': request.key } });
          request.status = answer.status;
          if (answer.status === 200) answered200 += 1;
        } catch {
          return; // the server is gone
        }
      }
    };
    const loops = Array.from({ length: 16 }, loop);
    await waitFor(() => answered200 >= 300, { timeoutMs: 30_000 });
    server.kill('SIGKILL');
    await Promise.all(loops);
    const unanswered = sent.filter((request) => request.status === undefined);

    await startServer(temp.dir, port);
    const amountsIn = async (account: string) => {
      const answer = await http(`${base}/aggregates/account/${account}/events?limit=1000`);
      return (answer.body as { events: { type: string; data: { amount: number } }[] }).events.filter((event) => event.type === 'Deposited').map((event) => event.data.amount);
    };
    const countAll = async () => {
      const counts = new Map<number, number>();
      for (const account of accounts) for (const amount of await amountsIn(account)) counts.set(amount, (counts.get(amount) ?? 0) + 1);
      return counts;
    };

    const afterCrash = await countAll();
    for (const request of sent.filter((candidate) => candidate.status === 200)) expect(afterCrash.get(request.amount), request.key).toBe(1);

    for (const request of unanswered) {
      const answer = await http(`${base}/commands/account/${request.account}/deposit`, { method: 'POST', json: { amount: request.amount }, headers: { 'idempotency-key': request.key } });
      expect(answer.status, request.key).toBe(200);
    }
    const afterReplay = await countAll();
    for (const [amount, count] of afterReplay) expect(count, `amount ${amount}`).toBe(1);
    for (const request of sent.filter((candidate) => candidate.status === 200 || unanswered.includes(candidate))) {
      expect(afterReplay.get(request.amount), request.key).toBe(1);
    }
    for (const account of accounts) {
      const versions = ((await http(`${base}/aggregates/account/${account}/events?limit=1000`)).body as { events: { version: number }[] }).events.map((event) => event.version);
      expect(versions).toEqual(versions.map((_, index) => index + 1));
    }
  });
});
