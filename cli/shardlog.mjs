#!/usr/bin/env node
// The `shardlog` executable: loads the TypeScript program through tsx's loader and runs it.
import process from 'node:process';
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('./program.ts');
const exitCode = await runCli(process.argv.slice(2));
// A failed command exits now, whatever it left open; a finished one lets stdout drain, and
// `start` keeps serving until a signal.
if (exitCode !== 0) process.exit(exitCode);
