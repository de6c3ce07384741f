#!/usr/bin/env node
// The `shardlog` executable: loads the TypeScript CLI through tsx's loader.
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');
