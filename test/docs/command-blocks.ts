/**
 * Finds the shell examples in the docs: every ```sh block, split into commands and the output
 * each one is documented to print (the `# ` lines right after it).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CommandStep {
  /** The command as written, continuation lines joined. */
  command: string;
  /** The output lines the doc shows for it, without their `# `; `…` stands for what varies. */
  expected: string[];
}

export interface CommandBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** `sh no-run`: installs something or starts a server; shown, never run. */
  runnable: boolean;
  steps: CommandStep[];
}

/** README.md and docs/*.md (not the ADRs: they record history, not commands to run). */
export function documentedFiles(root: string): string[] {
  const docs = readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs];
}

const fence = /^```(\S*)([^\n]*)\n([\s\S]*?)^```\s*$/gm;

/** Languages a reader would take for shell commands: they must be written ```sh to be checked. */
export const shellLanguages = new Set(['sh', 'bash', 'shell', 'console', 'zsh']);

export function fencedLanguages(text: string): { language: string; line: number }[] {
  return [...text.matchAll(fence)].map((match) => ({ language: match[1] ?? '', line: lineOf(text, match.index) }));
}

export function commandBlocks(file: string, text: string): CommandBlock[] {
  const blocks: CommandBlock[] = [];
  for (const match of text.matchAll(fence)) {
    if (match[1] !== 'sh') continue;
    const runnable = !/\bno-run\b/.test(match[2] ?? '');
    blocks.push({ file, line: lineOf(text, match.index), runnable, steps: stepsOf(match[3] ?? '') });
  }
  return blocks;
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

function stepsOf(body: string): CommandStep[] {
  const steps: CommandStep[] = [];
  let continued: string | undefined;
  for (const raw of body.split('\n')) {
    const line = raw.trimEnd();
    if (continued !== undefined) {
      continued += `\n${line}`;
      if (!line.endsWith('\\')) {
        steps.push({ command: continued, expected: [] });
        continued = undefined;
      }
      continue;
    }
    if (line === '') continue;
    if (line.startsWith('#')) {
      // Comment lines before the first command are prose; after a command they are its output.
      steps.at(-1)?.expected.push(line.replace(/^# ?/, ''));
      continue;
    }
    if (line.endsWith('\\')) continued = line;
    else steps.push({ command: line, expected: [] });
  }
  if (continued !== undefined) steps.push({ command: continued, expected: [] });
  return steps;
}

/** A documented output line as a pattern: literal text, with `…` matching anything. */
export function outputPattern(expected: string): RegExp {
  const parts = expected.split('…').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`);
}

export function readDoc(root: string, file: string): string {
  return readFileSync(join(root, file), 'utf8');
}
