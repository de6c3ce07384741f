import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { isNatsOutage, jetStreamApiCodeOf } from '../../runtime/bus/nats-errors.ts';
import { freePort } from './free-port.ts';
import { accepts } from './nats-server.ts';
import { makeTempDir } from './temp-dir.ts';
import { waitFor } from './wait-for.ts';

export interface ClusteredNatsServer {
  /** The server's name in the cluster (`n1`, `n2`, …): what `cluster.leader` reports. */
  name: string;
  url: string;
  port: number;
  running: () => boolean;
  /** SIGKILL, wait for exit; its store dir stays for `start`. */
  kill: () => Promise<void>;
  /** Starts it again on the same ports and store dir (it rejoins the cluster). */
  start: () => Promise<void>;
}

export interface NatsCluster {
  servers: ClusteredNatsServer[];
  /** Every server's client URL: what `--nats a,b,c` takes. */
  urls: string[];
  /** The name of the server that leads a stream now (a KV bucket's stream is `KV_<bucket>`), once one is elected. */
  leaderOf: (stream: string, timeoutMs?: number) => Promise<ClusteredNatsServer>;
  /** Resolves once the stream has a leader and every replica is current (after a server came back). */
  settled: (stream: string, timeoutMs?: number) => Promise<void>;
  /** SIGTERM every server, wait, remove the store dirs. */
  stop: () => Promise<void>;
}

/**
 * A JetStream cluster of real nats-servers on free loopback ports, each with its own store
 * dir and a config file naming the others as routes. Resolves once JetStream can place a
 * stream on every server, so replicated streams can be created at once.
 */
export async function startNatsCluster(size = 3, clusterName = 'shardlog-test'): Promise<NatsCluster> {
  const temp = makeTempDir('shardlog-nats-cluster-');
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), route: await freePort() })));
  const routes = ports.map(({ route }) => `nats-route://127.0.0.1:${route}`);
  const halts: ((signal: NodeJS.Signals) => Promise<void>)[] = [];
  const servers = ports.map(({ client, route }, index): ClusteredNatsServer => {
    const name = `n${index + 1}`;
    const storeDir = join(temp.dir, name);
    mkdirSync(storeDir);
    const config = join(temp.dir, `${name}.conf`);
    writeFileSync(
      config,
      [
        `server_name: ${name}`,
        `listen: 127.0.0.1:${client}`,
        `jetstream { store_dir: "${storeDir}" }`,
        `cluster { name: ${clusterName}, listen: 127.0.0.1:${route}, routes: [${routes.filter((_, other) => other !== index).join(', ')}] }`,
      ].join('\n') + '\n',
    );
    let child: ChildProcess | undefined;
    let stderr = '';
    const start = async (): Promise<void> => {
      stderr = '';
      const process = spawn('nats-server', ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = process;
      process.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4_000)));
      const exited = new Promise<never>((_, reject) => process.once('exit', (code) => reject(new Error(`nats-server ${name} exited (${code}) before serving: ${stderr}`))));
      exited.catch(() => undefined);
      const deadline = Date.now() + 10_000;
      for (;;) {
        if (await Promise.race([accepts(client), exited])) return;
        if (Date.now() > deadline) throw new Error(`nats-server ${name} did not accept connections on ${client} within 10 s: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const halt = async (signal: NodeJS.Signals): Promise<void> => {
      const process = child;
      child = undefined;
      if (process === undefined || process.exitCode !== null || process.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => process.once('exit', () => resolve()));
      process.kill(signal);
      await exited;
    };
    halts.push(halt);
    return { name, url: `nats://127.0.0.1:${client}`, port: client, running: () => child !== undefined, kill: () => halt('SIGKILL'), start };
  });
  const stop = async (): Promise<void> => {
    await Promise.allSettled(halts.map((halt) => halt('SIGTERM')));
    temp.remove();
  };

  /** Asks any running server about the stream; undefined while it has no leader (or no server answers). */
  const streamCluster = async (stream: string): Promise<{ leader?: string; replicas?: { name: string; current: boolean; offline?: boolean }[] } | undefined> => {
    const urls = servers.filter((server) => server.running()).map((server) => server.url);
    if (urls.length === 0) return undefined;
    const nc = await connect({ servers: urls, timeout: 1_000, maxReconnectAttempts: 0 }).catch(() => undefined);
    if (nc === undefined) return undefined;
    try {
      const jsm = await jetstreamManager(nc, { timeout: 1_000 });
      return (await jsm.streams.info(stream)).cluster;
    } catch (error) {
      // Between leaders the API times out or refuses: the caller polls again.
      if (isNatsOutage(error) || jetStreamApiCodeOf(error) !== undefined) return undefined;
      throw error;
    } finally {
      await nc.close();
    }
  };

  try {
    await Promise.all(servers.map((server) => server.start()));
    await waitFor(
      async () => {
        const nc = await connect({ servers: servers.map((server) => server.url), timeout: 1_000 }).catch(() => undefined);
        if (nc === undefined) return false;
        try {
          // Ready once a stream with a replica on every server can be placed: the meta leader
          // is elected and knows every peer.
          const jsm = await jetstreamManager(nc, { timeout: 2_000 });
          await jsm.streams.add({ name: 'HARNESS_READY', subjects: ['harness.ready'], num_replicas: size, storage: 'memory' });
          await jsm.streams.delete('HARNESS_READY');
          return true;
        } catch (error) {
          if (isNatsOutage(error) || jetStreamApiCodeOf(error) !== undefined) return false;
          throw error;
        } finally {
          await nc.close();
        }
      },
      { timeoutMs: 20_000, everyMs: 100 },
    );
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    servers,
    urls: servers.map((server) => server.url),
    leaderOf: async (stream, timeoutMs = 15_000) => {
      let leader: ClusteredNatsServer | undefined;
      await waitFor(
        async () => {
          const name = (await streamCluster(stream))?.leader;
          leader = servers.find((server) => server.name === name && server.running());
          return leader !== undefined;
        },
        { timeoutMs, everyMs: 50 },
      );
      return leader!;
    },
    settled: async (stream, timeoutMs = 20_000) => {
      await waitFor(
        async () => {
          const cluster = await streamCluster(stream);
          return cluster?.leader !== undefined && (cluster.replicas ?? []).every((replica) => replica.current && replica.offline !== true);
        },
        { timeoutMs, everyMs: 100 },
      );
    },
    stop,
  };
}
