import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../../cli/program.ts';
import { freePort } from '../support/free-port.ts';
import { startNatsServer } from '../support/nats-server.ts';
import { http } from '../support/node.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';

const cli = fileURLToPath(new URL('../../cli/shardlog.mjs', import.meta.url));
const program = new URL('../../cli/program.ts', import.meta.url).href;
let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

function shardlog(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
}

/** Runs the program in this process and keeps what it printed. */
async function inProcess(args: string[]): Promise<{ code: number; stdout: string; stderrLines: string[] }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { out: (text) => (stdout += text), err: (text) => (stderr += text) });
  return { code, stdout, stderrLines: stderr.split('\n').filter((line) => line !== '') };
}

describe('shardlog CLI: the command line', () => {
  it('refuses a bad flag with one line, a hint, exit code 2 and nothing on stdout', () => {
    const result = shardlog(['start', '--port', 'abc']);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe("shardlog: option '--port <port>' argument 'abc' is invalid. expected an integer from 0 to 65535\nsee 'shardlog start --help'\n");
  });

  it('refuses a bad value from the environment the same way', () => {
    const result = shardlog(['start'], { SHARDLOG_SHARDS: 'zero' });
    expect(result.status).toBe(2);
    expect(result.stderr.split('\n')).toEqual(["shardlog: option '--shards <n>' value 'zero' from env 'SHARDLOG_SHARDS' is invalid. expected an integer from 1 to 1024", "see 'shardlog start --help'", '']);
  });

  it.each([
    [['start', '--prot', '3000'], "shardlog: unknown option '--prot' (Did you mean --port?)", 'shardlog start'],
    [['start', '--durability', 'sometimes'], "shardlog: option '--durability <mode>' argument 'sometimes' is invalid. Allowed choices are fsync, relaxed.", 'shardlog start'],
    [['strat'], "shardlog: unknown command 'strat' (Did you mean start?)", 'shardlog'],
    [['projections', 'lsit'], "shardlog: unknown command 'lsit' (Did you mean list?)", 'shardlog projections'],
    [[], 'shardlog: missing command: start, events, reshard, projections, dlq, sagas, cluster', 'shardlog'],
    [['dlq'], 'shardlog: missing dlq command: list, retry, skip', 'shardlog dlq'],
    [['events', 'account'], "shardlog: missing required argument 'id'", 'shardlog events'],
    [['events', 'account', 'a-1', 'extra'], "shardlog: too many arguments for 'events'. Expected 2 arguments but got 3.", 'shardlog events'],
    [['reshard'], "shardlog: required option '--shards <n>' not specified", 'shardlog reshard'],
    [['dlq', 'retry', 'balances', '0'], "shardlog: command-argument value '0' is invalid for argument 'id'. expected an integer from 1 to 9007199254740991", 'shardlog dlq retry'],
  ])('refuses %j with one line and exit code 2', async (args, line, command) => {
    const result = await inProcess(args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderrLines).toEqual([line, `see '${command} --help'`]);
  });

  it('prints help to stdout and exits 0 when asked', async () => {
    const top = await inProcess(['--help']);
    expect(top.code).toBe(0);
    expect(top.stderrLines).toEqual([]);
    expect(top.stdout).toMatch(/^Usage: shardlog \[options\] \[command\]/);
    for (const command of ['start', 'events', 'reshard', 'projections', 'dlq', 'sagas', 'cluster']) expect(top.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));

    const start = await inProcess(['help', 'start']);
    expect(start.code).toBe(0);
    expect(start.stdout).toMatch(/^Usage: shardlog start \[options\]/);
    expect(start.stdout).toContain('env: SHARDLOG_PORT');

    const bin = shardlog(['dlq', 'retry', '--help']);
    expect(bin.status).toBe(0);
    expect(bin.stderr).toBe('');
    expect(bin.stdout).toMatch(/^Usage: shardlog dlq retry \[options\] <projection> <id>/);
  });

  it('starts nothing when cli/program.ts is imported', () => {
    // A fresh process: the import alone may add no signal or stream listener and print nothing,
    // and the process must end by itself (a server, worker or timer left running would hold it).
    const script = `
      const listeners = () => ({ sigterm: process.listenerCount('SIGTERM'), sigint: process.listenerCount('SIGINT'), stdoutError: process.stdout.listenerCount('error') });
      const before = listeners();
      const module = await import(${JSON.stringify(program)});
      process.stdout.write(JSON.stringify({ before, after: listeners(), exports: Object.keys(module).sort() }));`;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], { encoding: 'utf8', timeout: 60_000 });
    expect(result.signal).toBeNull();
    expect(result.status).toBe(0);
    expect(result.stderr).toBe('');
    const report = JSON.parse(result.stdout) as { before: unknown; after: unknown; exports: string[] };
    expect(report.after).toEqual(report.before);
    expect(report.exports).toEqual(['buildProgram', 'runCli']);
  });
});

describe('shardlog CLI: failures of the work', () => {
  it('prints one line and exits 1, without a stack', () => {
    const reshard = shardlog(['reshard', '--data', '/nonexistent-shardlog-dir', '--shards', '2']);
    expect(reshard.status).toBe(1);
    expect(reshard.stderr).toBe('shardlog: /nonexistent-shardlog-dir holds no Shardlog data (no meta.json)\n');
  });

  it('names the flag a cluster status needs, as a usage error', async () => {
    const saved = process.env.NATS_URL;
    delete process.env.NATS_URL;
    try {
      const result = await inProcess(['cluster', 'status']);
      expect(result.code).toBe(2);
      expect(result.stderrLines).toEqual(['shardlog: cluster status needs --nats <url> (or NATS_URL)']);
    } finally {
      if (saved !== undefined) process.env.NATS_URL = saved;
    }
  });

  it('reads the cluster from NATS_URL when --nats is not given, and says when there is none', async () => {
    const nats = await startNatsServer();
    cleanup.push(nats.stop);
    const saved = process.env.NATS_URL;
    process.env.NATS_URL = nats.url;
    try {
      const result = await inProcess(['cluster', 'status', '--nats-prefix', 'nobody']);
      expect(result.code).toBe(1);
      expect(result.stderrLines).toEqual([`shardlog: no cluster with prefix "nobody" on ${nats.url} (start a node with --nats and --node-id to create one)`]);
    } finally {
      if (saved === undefined) delete process.env.NATS_URL;
      else process.env.NATS_URL = saved;
    }
  });

  it('says when NATS cannot be reached', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    const result = await inProcess(['cluster', 'status', '--nats', url]);
    expect(result.code).toBe(1);
    expect(result.stderrLines).toHaveLength(1);
    expect(result.stderrLines[0]).toMatch(new RegExp(`^shardlog: cannot read the cluster from ${url}: `));
  });

  it('says why a node cannot be reached', async () => {
    const result = await inProcess(['projections', 'list', '--url', 'http://127.0.0.1:9']);
    expect(result.code).toBe(1);
    expect(result.stderrLines).toEqual(['shardlog: cannot reach a node at http://127.0.0.1:9 (bad port); is `shardlog start` running there? (--url or SHARDLOG_URL)']);
  });

  it('refuses to bind beyond loopback without tokens, naming --insecure', () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const result = shardlog(['start', '--host', '0.0.0.0', '--port', '0', '--data', temp.dir], { SHARDLOG_INSECURE: 'false' });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^shardlog: refusing to serve 0\.0\.0\.0 with auth off.*--insecure.*\n$/);
  });
});

describe('shardlog CLI: serving', () => {
  it('serves, refuses a second node on its data dir, prints a stream with `events`, and shuts down gracefully on SIGTERM', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const server = spawn(process.execPath, [cli, 'start', '--port', '0', '--data', temp.dir, '--shards', '1', '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanup.push(() => {
      if (server.exitCode === null) server.kill('SIGKILL');
    });
    let output = '';
    server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitFor(() => output.includes('shardlog node serving'), { timeoutMs: 120_000 });
    const serving = JSON.parse(output.split('\n').find((line) => line.includes('shardlog node serving'))!) as { address: { port: number; family: string }[] };
    const port = serving.address.find((entry) => entry.family === 'IPv4')!.port;
    const base = `http://127.0.0.1:${port}`;
    expect((await http(`${base}/commands/account/cli-1/open`, { method: 'POST', json: { owner: 'ada' } })).status).toBe(200);
    expect((await http(`${base}/commands/account/cli-1/deposit`, { method: 'POST', json: { amount: 7 } })).status).toBe(200);

    const second = shardlog(['start', '--port', '0', '--data', temp.dir, '--shards', '1']);
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(/^shardlog: [^\n]*in use[^\n]*\n$/);

    const events = shardlog(['events', 'account', 'cli-1', '--data', temp.dir]);
    expect(events.status).toBe(0);
    const lines = events.stdout.trim().split('\n').map((line) => JSON.parse(line) as { type: string; version: number; data: unknown });
    expect(lines.map(({ type, version, data }) => ({ type, version, data }))).toEqual([
      { type: 'AccountOpened', version: 1, data: { owner: 'ada' } },
      { type: 'Deposited', version: 2, data: { amount: 7 } },
    ]);
    const unknown = shardlog(['events', 'nope', 'cli-1', '--data', temp.dir]);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/^shardlog: unknown aggregate "nope"[^\n]*\n$/);

    const inFlight = Array.from({ length: 50 }, () => http(`${base}/commands/account/cli-1/deposit`, { method: 'POST', json: { amount: 1 } }).catch(() => undefined));
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
    const answered = (await Promise.all(inFlight)).filter((answer) => answer?.status === 200).length;
    expect(existsSync(join(temp.dir, 'LOCK'))).toBe(false);
    const after = shardlog(['events', 'account', 'cli-1', '--data', temp.dir]);
    expect(after.stdout.trim().split('\n').length).toBe(2 + answered);
  }, 240_000);
});
