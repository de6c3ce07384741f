import { spawnSync } from 'node:child_process';

const natsServerMissing =
  'nats-server is not on PATH; the JetStream and cluster tests run a real one. Install it (Debian/Ubuntu: apt-get install nats-server; macOS: brew install nats-server) and run the tests again.';

/**
 * Vitest global setup: checks once, before any test file runs, that nats-server can be started,
 * so a machine without it gets one line saying what to install instead of a
 * `spawnSync nats-server ENOENT` stack trace in every JetStream test.
 */
export default function requireNatsServer(): void {
  const probe = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  if (probe.error === undefined && probe.status === 0) return;
  // Exit rather than throw: vitest would add "No test files found" and an "Unhandled Error" frame.
  process.stderr.write(`\n${natsServerMissing}\n`);
  process.exit(1);
}
