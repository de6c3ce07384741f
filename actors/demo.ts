/**
 * `npm run example`: runs the example app in-process and prints what each command returns.
 * It uses a fresh temp dir (removed at the end), not ./data, so it works while `npm start`
 * serves ./data; give a dir as the first argument to keep the state between runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, RejectedError } from '../runtime/index.ts';
import app from './app.ts';

const givenDir = process.argv[2];
const dataDir = givenDir ?? mkdtempSync(join(tmpdir(), 'shardlog-example-'));
const runtime = await createRuntime({ app, dataDir });
try {
  const show = (label: string, value: unknown) => console.log(label.padEnd(28), JSON.stringify(value));
  const opened = await runtime.dispatch({ aggregate: 'account', id: 'acc-1', command: 'open', input: { owner: 'ada' } }).catch((error: unknown) => error);
  show('open acc-1', opened instanceof RejectedError ? opened.data : opened);
  show('deposit 100', await runtime.dispatch({ aggregate: 'account', id: 'acc-1', command: 'deposit', input: { amount: 100 } }));
  show('withdraw 30', await runtime.dispatch({ aggregate: 'account', id: 'acc-1', command: 'withdraw', input: { amount: 30 } }));
  const refused = await runtime.dispatch({ aggregate: 'account', id: 'acc-1', command: 'withdraw', input: { amount: 1_000_000 } }).catch((error: unknown) => error);
  show('withdraw 1,000,000', refused instanceof RejectedError ? { rejected: refused.data } : refused);
  show('state of acc-1', await runtime.state({ aggregate: 'account', id: 'acc-1' }));
  show('restock tea', await runtime.dispatch({ aggregate: 'inventory', id: 'tea', command: 'restock', input: { quantity: 10 } }));
  const order = `order-${Date.now()}`;
  show(`place ${order}`, await runtime.dispatch({ aggregate: 'order', id: order, command: 'place', input: { customerId: 'c-1', items: [{ sku: 'tea', quantity: 2, unitPrice: 3.5 }] } }));
  // The order-fulfilment saga reserves the tea, authorizes the payment and confirms the order.
  for (let tries = 0; tries < 100; tries++) {
    const saga = await runtime.sagas.get('order-fulfilment', order);
    if (saga !== undefined && saga.status !== 'running') break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  show(`saga of ${order}`, await runtime.sagas.get('order-fulfilment', order));
  show(`state of ${order}`, await runtime.state({ aggregate: 'order', id: order }));
  show('state of tea', await runtime.state({ aggregate: 'inventory', id: 'tea' }));
} finally {
  await runtime.close();
  if (givenDir === undefined) rmSync(dataDir, { recursive: true, force: true });
}
