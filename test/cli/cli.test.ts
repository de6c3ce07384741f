import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { http } from '../support/node.ts';
import { makeTempDir, waitFor } from '../support/temp-dir.ts';

const cli = fileURLToPath(new URL('../../cli/shardlog.mjs', import.meta.url));
let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

function shardlog(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
}

describe('shardlog CLI', () => {
  it('refuses a bad flag with a one-line error and a non-zero exit', () => {
    const result = shardlog(['start', '--port', 'abc']);
    expect(result.status).toBe(1);
    expect(result.stderr.split('\n')[0]).toMatch(/^error: option '--port <port>' argument 'abc' is invalid/);
    const durability = shardlog(['start', '--durability', 'sometimes']);
    expect(durability.status).toBe(1);
    expect(durability.stderr).toContain("Allowed choices are fsync, relaxed");
    const reshard = shardlog(['reshard', '--data', '/nonexistent-shardlog-dir', '--shards', '2']);
    expect(reshard.status).toBe(1);
    expect(reshard.stderr.trim()).toBe('shardlog: /nonexistent-shardlog-dir holds no Shardlog data (no meta.json)');
    const fromEnv = shardlog(['start'], { SHARDLOG_SHARDS: 'zero' });
    expect(fromEnv.status).toBe(1);
    expect(fromEnv.stderr).toContain('--shards');
  });

  it('refuses to bind beyond loopback without tokens, naming --insecure', () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const result = shardlog(['start', '--host', '0.0.0.0', '--port', '0', '--data', temp.dir], { SHARDLOG_INSECURE: 'false' });
    expect(result.status).toBe(1);
    expect(result.stderr.trim()).toMatch(/^shardlog: refusing to serve 0\.0\.0\.0 with auth off.*--insecure/);
  });

  it('serves, prints a stream with `events`, and shuts down gracefully on SIGTERM', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const server = spawn(process.execPath, [cli, 'start', '--port', '0', '--data', temp.dir, '--shards', '1', '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanup.push(() => {
      if (server.exitCode === null) server.kill('SIGKILL');
    });
    let output = '';
    server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitFor(() => output.includes('shardlog node serving'), { timeoutMs: 30_000 });
    const serving = JSON.parse(output.split('\n').find((line) => line.includes('shardlog node serving'))!) as { address: { port: number; family: string }[] };
    const port = serving.address.find((entry) => entry.family === 'IPv4')!.port;
    const base = `http://127.0.0.1:${port}`;
    expect((await http(`${base}/commands/account/cli-1/open`, { method: 'POST', json: { owner: 'ada' } })).status).toBe(200);
    expect((await http(`${base}/commands/account/cli-1/deposit`, { method: 'POST', json: { amount: 7 } })).status).toBe(200);

    const events = shardlog(['events', 'account', 'cli-1', '--data', temp.dir]);
    expect(events.status).toBe(0);
    const lines = events.stdout.trim().split('\n').map((line) => JSON.parse(line) as { type: string; version: number; data: unknown });
    expect(lines.map(({ type, version, data }) => ({ type, version, data }))).toEqual([
      { type: 'AccountOpened', version: 1, data: { owner: 'ada' } },
      { type: 'Deposited', version: 2, data: { amount: 7 } },
    ]);
    expect(shardlog(['events', 'nope', 'cli-1', '--data', temp.dir]).stderr).toMatch(/^shardlog: unknown aggregate "nope"/);

    const inFlight = Array.from({ length: 50 }, () => http(`${base}/commands/account/cli-1/deposit`, { method: 'POST', json: { amount: 1 } }).catch(() => undefined));
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
    const answered = (await Promise.all(inFlight)).filter((answer) => answer?.status === 200).length;
    expect(existsSync(join(temp.dir, 'LOCK'))).toBe(false);
    const after = shardlog(['events', 'account', 'cli-1', '--data', temp.dir]);
    expect(after.stdout.trim().split('\n').length).toBe(2 + answered);
  });
});
