import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Socket } from 'node:net';
import { freePort } from './free-port.ts';
import { makeTempDir } from './temp-dir.ts';

export interface NatsServer {
  url: string;
  port: number;
  storeDir: string;
  /** SIGTERM, wait for exit, remove the store dir. */
  stop: () => Promise<void>;
  /** SIGKILL, wait for exit; the store dir stays. */
  kill: () => Promise<void>;
  /** Stop (keeping the store dir) and start again on the same port and store dir. */
  restart: () => Promise<void>;
  /** Stop it for now, keeping port and store dir (start with `start`). */
  pause: () => Promise<void>;
  start: () => Promise<void>;
  /** The running server's process id (undefined while stopped). */
  pid: () => number | undefined;
}

/** Whether something accepts TCP connections on the loopback port now. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.connect(port, '127.0.0.1');
  });
}

/** nats-server's version, e.g. [2, 9, 10]. */
function serverVersion(): number[] {
  const printed = execFileSync('nats-server', ['--version'], { encoding: 'utf8' });
  return (/v(\d+)\.(\d+)\.(\d+)/.exec(printed) ?? []).slice(1).map(Number);
}

/**
 * Servers from 2.10 fsync every JetStream write before acknowledging it when told
 * `sync_interval: always`; 2.9 (Debian's) has no such setting and syncs every 2 minutes.
 */
function syncAlwaysConfig(dir: string): string[] {
  const [major = 0, minor = 0] = serverVersion();
  if (major < 2 || (major === 2 && minor < 10)) return [];
  const file = join(dir, 'sync-always.conf');
  writeFileSync(file, 'jetstream { sync_interval: always }\n');
  return ['-c', file];
}

/** A real nats-server with JetStream on a free loopback port and a temp store dir (fsyncing every write where the server can). */
export async function startNatsServer(): Promise<NatsServer> {
  const port = await freePort();
  const store = makeTempDir('shardlog-nats-');
  const config = syncAlwaysConfig(store.dir);
  let child: ChildProcess | undefined;
  let stderr = '';

  const start = async (): Promise<void> => {
    stderr = '';
    const process = spawn('nats-server', [...config, '-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store.dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = process;
    process.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4_000)));
    const exited = new Promise<never>((_, reject) => process.once('exit', (code) => reject(new Error(`nats-server exited (${code}) before serving: ${stderr}`))));
    exited.catch(() => undefined);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (await Promise.race([accepts(port), exited])) return;
      if (Date.now() > deadline) throw new Error(`nats-server did not accept connections on ${port} within 10 s: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const process = child;
    child = undefined;
    if (process === undefined || process.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => process.once('exit', () => resolve()));
    process.kill(signal);
    await exited;
  };

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir: store.dir,
    start,
    pid: () => child?.pid,
    pause: () => halt('SIGTERM'),
    stop: async () => {
      await halt('SIGTERM');
      store.remove();
    },
    kill: () => halt('SIGKILL'),
    restart: async () => {
      await halt('SIGTERM');
      await start();
    },
  };
}
