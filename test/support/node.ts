import { startNode, type NodeConfig, type RunningNode } from '../../gateway/node.ts';
import { makeTempDir } from './temp-dir.ts';

export interface TestNode {
  node: RunningNode;
  url: string;
  dir: string;
  stop: () => Promise<void>;
}

/** A real node on a free loopback port, on a fresh temp data dir. */
export async function startTestNode(config: Partial<NodeConfig> = {}): Promise<TestNode> {
  const temp = makeTempDir();
  const node = await startNode({
    port: 0,
    host: '127.0.0.1',
    dataDir: temp.dir,
    appModule: new URL('../../actors/app.ts', import.meta.url).href,
    partitions: 8,
    shards: 2,
    durability: 'fsync',
    nodeId: 'test',
    tokens: [],
    insecure: false,
    bodyLimit: 1024 * 1024,
    logLevel: 'silent',
    ...config,
  });
  const address = node.gateway.server.address();
  if (address === null || typeof address === 'string') throw new Error('node has no TCP address');
  return {
    node,
    url: `http://127.0.0.1:${address.port}`,
    dir: temp.dir,
    stop: async () => {
      await node.close();
      temp.remove();
    },
  };
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: unknown;
  contentType: string;
}

/** fetch with the body read as JSON when it is JSON. */
export async function http(url: string, init: RequestInit & { json?: unknown } = {}): Promise<HttpAnswer> {
  const { json, headers, ...rest } = init;
  const response = await fetch(url, {
    ...rest,
    headers: { ...(json === undefined ? {} : { 'content-type': 'application/json' }), ...(headers as Record<string, string> | undefined) },
    ...(json === undefined ? {} : { body: JSON.stringify(json) }),
  });
  const text = await response.text();
  const contentType = response.headers.get('content-type') ?? '';
  return { status: response.status, headers: response.headers, body: contentType.includes('json') && text !== '' ? (JSON.parse(text) as unknown) : text, contentType };
}
