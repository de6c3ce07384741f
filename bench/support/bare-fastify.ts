/**
 * The HTTP limit of this machine for the http suite: a bare Fastify route that parses the
 * same JSON body a command carries and replies with a body of the same shape, nothing else.
 * Prints `listening <port>` when ready.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.post<{ Params: { id: string; command: string }; Body: { amount: number } }>('/commands/account/:id/:command', (request, reply) => {
  const amount = request.body.amount;
  void reply.header('etag', '"1"').send({
    aggregate: 'account',
    id: request.params.id,
    commandId: '00000000-0000-0000-0000-000000000000',
    version: amount,
    position: '1:1',
    events: [{ type: 'Deposited', version: 1 }],
  });
});
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
process.stdout.write(`listening ${typeof address === 'object' && address !== null ? address.port : 0}\n`);
