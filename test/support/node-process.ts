import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.ts';
import { makeTempDir } from './temp-dir.ts';

const cli = fileURLToPath(new URL('../../cli/shardlog.mjs', import.meta.url));

export interface NodeProcess {
  nodeId: string;
  url: string;
  dir: string;
  process: ChildProcess;
  /** What the node wrote, for a failing test's message. */
  output: () => string;
  /** Resolves with the exit code or signal once the process has ended. */
  exited: Promise<number | string>;
  signal: (signal: NodeJS.Signals) => void;
  removeDir: () => void;
}

/** A `shardlog start` process on a free loopback port and a fresh data dir, resolved once /healthz answers. */
export async function startNodeProcess(nodeId: string, args: string[], { readyWithinMs = 30_000 } = {}): Promise<NodeProcess> {
  const temp = makeTempDir();
  const port = await freePort();
  const child = spawn(process.execPath, [cli, 'start', '--port', String(port), '--host', '127.0.0.1', '--data', temp.dir, '--node-id', nodeId, '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code ?? 0)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + readyWithinMs;
  for (let up = false; !up; ) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`node ${nodeId} exited: ${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`node ${nodeId} did not answer /healthz in ${readyWithinMs} ms: ${output}`);
    }
    up = await fetch(`${url}/healthz`).then(
      (response) => response.ok,
      () => false,
    );
    if (!up) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { nodeId, url, dir: temp.dir, process: child, output: () => output, exited, signal: (signal) => child.kill(signal), removeDir: temp.remove };
}

/** SIGKILLs every node, waits for each to exit and removes its data dir (a test's clean-up). */
export async function killNodes(nodes: readonly NodeProcess[]): Promise<void> {
  for (const node of nodes) {
    node.signal('SIGKILL');
    await node.exited;
    node.removeDir();
  }
}
