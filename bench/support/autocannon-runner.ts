/**
 * The load generator of the http suite, run in its own process so it does not share a core's
 * event loop with the server: deposits of 1 to random accounts of 1,000. Argument: a JSON
 * object { url, connections, durationSeconds, overallRate? }. Prints autocannon's result as
 * JSON, with the CPU this process spent generating the load (`cpuMs`): it runs on the same
 * cores as the server.
 */
import autocannon from 'autocannon';

const options = JSON.parse(process.argv[2] ?? '{}') as { url: string; connections: number; durationSeconds: number; overallRate?: number; accounts?: number };
const accounts = options.accounts ?? 1_000;
const cpuBefore = process.cpuUsage();
const result = await autocannon({
  url: options.url,
  connections: options.connections,
  duration: options.durationSeconds,
  ...(options.overallRate === undefined ? {} : { overallRate: options.overallRate }),
  requests: [
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => ({ ...request, path: `/commands/account/acc-${Math.floor(Math.random() * accounts)}/deposit`, body: '{"amount":1}' }),
    },
  ],
});
const cpu = process.cpuUsage(cpuBefore);
process.stdout.write(`${JSON.stringify({ ...result, cpuMs: (cpu.user + cpu.system) / 1_000 })}\n`);
