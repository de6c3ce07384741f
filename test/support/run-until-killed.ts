import { spawn } from 'node:child_process';

/**
 * Runs a fixture script in a child Node process (through tsx) and SIGKILLs it once it has
 * printed `killAfter` lines starting with `ack `. Resolves with every such line's words after
 * `ack` (the kill lands while the child is busy, so it may print a few more first). Rejects
 * when the child exits by itself, or has not printed enough within `timeoutMs`.
 */
export function runUntilKilled(
  script: string,
  args: readonly string[],
  killAfter: number,
  { timeoutMs = 30_000, env = process.env }: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<string[][]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    const acks: string[][] = [];
    let buffer = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`load child acknowledged only ${acks.length} of ${killAfter} in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const [word, ...rest] = line.split(' ');
        if (word === 'ack') acks.push(rest);
      }
      if (acks.length >= killAfter && child.exitCode === null && !child.killed) child.kill('SIGKILL');
    });
    child.on('exit', (_code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve(acks);
      else reject(new Error(`load child exited on its own (${String(signal)}); stderr: ${stderr}`));
    });
  });
}
