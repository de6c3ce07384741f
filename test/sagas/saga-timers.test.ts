import { describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../../runtime/index.ts';
import reminderApp from '../fixtures/saga-reminder-app.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { startNatsServer } from '../support/nats-server.ts';
import requireNatsServer from '../support/require-nats-server.ts';
import { sagaDone } from '../support/sagas.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';

requireNatsServer();
const cleanup = cleanupAfterEach();
const reminders = Array.from({ length: 16 }, (_, index) => `r-${index}`);

async function expectEachRangOnce(runtime: Runtime): Promise<void> {
  for (const id of reminders) {
    expect((await sagaDone(runtime, 'nudger', id)).status, id).toBe('completed');
    expect((await runtime.state({ aggregate: 'reminder', id })).state, id).toEqual({ fired: 1 });
  }
}

describe('saga timers', () => {
  it('fire once after a restart that happened before they were due', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const open = () => createRuntime({ app: reminderApp, dataDir: temp.dir, partitions: 8, shards: 2, logger: silentLogger });
    const first = await open();
    await Promise.all(reminders.map((id) => first.dispatch({ aggregate: 'reminder', id, command: 'set', input: { delayMs: 1_500 } })));
    await waitFor(async () => (await first.sagas.list({ status: 'running' })).length === reminders.length);
    await first.close();
    const second = await open();
    cleanup.push(() => second.close());
    await expectEachRangOnce(second);
  });

  it('fire once on the node a partition moved to', async () => {
    const nats = await startNatsServer();
    cleanup.push(nats.stop);
    const nodes: Runtime<typeof reminderApp>[] = [];
    for (const nodeId of ['a', 'b']) {
      const temp = makeTempDir();
      cleanup.push(temp.remove);
      const runtime = await createRuntime({ app: reminderApp, dataDir: temp.dir, partitions: 8, shards: 2, logger: silentLogger, nats: { servers: nats.url }, cluster: { nodeId } });
      cleanup.push(() => runtime.close());
      nodes.push(runtime);
    }
    const [a, b] = nodes as [Runtime<typeof reminderApp>, Runtime<typeof reminderApp>];
    await waitFor(() => a.cluster!.status().owned > 0 && b.cluster!.status().owned > 0, { timeoutMs: 20_000 });
    await Promise.all(reminders.map((id) => a.dispatch({ aggregate: 'reminder', id, command: 'set', input: { delayMs: 2_500 } })));
    // The instances started on both nodes; b leaves before any timer is due.
    await waitFor(async () => (await a.sagas.list({ status: 'running' })).length + (await b.sagas.list({ status: 'running' })).length === reminders.length);
    expect((await b.sagas.list({ status: 'running' })).length).toBeGreaterThan(0);
    await b.leaveCluster(20_000);
    await b.close();
    await expectEachRangOnce(a);
  });
});
