/**
 * Option parsers and options that several commands share, so a flag means the same thing,
 * with the same environment variable and default, wherever it appears.
 */
import { InvalidArgumentError, Option } from 'commander';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const exampleApp = new URL('../actors/app.ts', import.meta.url).href;

export function integer(min: number, max: number): (raw: string) => number {
  return (raw) => {
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return Number(raw);
  };
}

export function natsPrefix(raw: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(raw)) throw new InvalidArgumentError('expected 1 to 64 letters, digits, _ or - (one NATS subject token)');
  return raw;
}

/** `--app` as a module URL: a URL stays as it is, a path (Windows drive paths too) resolves against the working directory. */
export function appUrl(module: string | undefined): string {
  if (module === undefined) return exampleApp;
  return /^[a-z]+:/i.test(module) && !/^[a-z]:\\/i.test(module) ? module : pathToFileURL(resolve(module)).href;
}

/** `--nats`, else NATS_URL; an empty value means none. */
export function natsServers(flag: string | undefined): string | undefined {
  const servers = flag ?? process.env.NATS_URL;
  return servers === undefined || servers === '' ? undefined : servers;
}

export const dataOption = () => new Option('--data <dir>', 'data directory').env('SHARDLOG_DATA').default('./data');
export const appOption = () => new Option('--app <module>', 'module whose default export is the app (default: the example app)').env('SHARDLOG_APP');
export const natsPrefixOption = (description: string) => new Option('--nats-prefix <prefix>', description).env('SHARDLOG_NATS_PREFIX').argParser(natsPrefix).default('shardlog');
/** JetStream takes 1 to 5 replicas per stream. */
export const natsReplicasOption = (description: string) => new Option('--nats-replicas <n>', description).env('SHARDLOG_NATS_REPLICAS').argParser(integer(1, 5));

/** How the commands that operate a running node reach it: its admin HTTP routes. */
export const urlOption = () => new Option('--url <url>', 'a running node’s HTTP address').env('SHARDLOG_URL').default('http://127.0.0.1:3000');
export const tokenOption = () => new Option('--token <token>', 'bearer token with the admin scope').env('SHARDLOG_TOKEN');
export interface AdminOptions {
  url: string;
  token?: string;
}
