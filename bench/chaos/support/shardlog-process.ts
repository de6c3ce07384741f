import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../../cli/shardlog.mjs', import.meta.url));

/** A `shardlog start` child on a given data dir and port, which a drill can kill and start again. */
export class ShardlogProcess {
  private child: ChildProcess | undefined;
  private output = '';

  /**
   * `args` follow `shardlog start --port --host --data --log-level`; with `entry`, the process
   * runs that script instead of the CLI and gets `--port <port> --data <dir>` then `args`.
   * `env` is added to this process's environment (e.g. an LD_PRELOAD shim); `setEnv` changes it
   * for the next start.
   */
  constructor(
    readonly dataDir: string,
    readonly port: number,
    private readonly args: readonly string[],
    private readonly entry?: string,
    private env: NodeJS.ProcessEnv = {},
  ) {}

  setEnv(env: NodeJS.ProcessEnv): void {
    this.env = env;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the node and resolves once /readyz answers 200 (or fails after `timeoutMs`). */
  async start(timeoutMs = 120_000): Promise<void> {
    this.output = '';
    const argv =
      this.entry === undefined
        ? [cli, 'start', '--port', String(this.port), '--host', '127.0.0.1', '--data', this.dataDir, '--log-level', 'warn', ...this.args]
        : ['--import', 'tsx', this.entry, '--port', String(this.port), '--data', this.dataDir, ...this.args];
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.env } });
    this.child = child;
    const keep = (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-8_000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`shardlog exited (${child.exitCode ?? child.signalCode}) before it was ready: ${this.output}`);
      if (await this.ready()) return;
      if (Date.now() > deadline) {
        const readyz = await fetch(`${this.url}/readyz`).then(
          async (response) => `/readyz ${response.status} ${await response.text()}`,
          (error: unknown) => `/readyz unreachable: ${String(error)}`,
        );
        throw new Error(`shardlog was not ready within ${timeoutMs} ms (${readyz}): ${this.output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Whether /readyz answers 200 now. */
  ready(): Promise<boolean> {
    return fetch(`${this.url}/readyz`).then(
      (response) => response.ok,
      () => false,
    );
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** What the node wrote last (its log tail), for a failing drill's message. */
  log(): string {
    return this.output;
  }

  /** Sends the signal and waits for the process to end. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }
}
