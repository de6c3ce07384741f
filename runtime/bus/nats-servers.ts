/**
 * The NATS servers to connect to, as nats.js takes them: `--nats a,b,c` (or one URL, or a
 * list) becomes one entry per server, and the client fails over between them.
 */
export function natsServerList(servers: string | readonly string[]): string[] {
  const list = (typeof servers === 'string' ? servers.split(',') : [...servers]).map((server) => server.trim()).filter((server) => server !== '');
  if (list.length === 0) throw new Error('no NATS server given');
  return list;
}
