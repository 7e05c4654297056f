/** `dfmerge zoo --out DIR [--seed N] [--fast] [--force] [--json]`: builds (or reuses) the self-made model zoo. */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { table } from '../util/format.js';
import { buildZoo, type ZooManifest } from '../zoo/zoo.js';

/** The accuracy table of a zoo: one row per model, test accuracy per task and the mean. */
export function zooTable(m: ZooManifest, split: 'validation' | 'test' = 'test'): string {
  const tasks = m.config.tasks;
  const labels: [string, string][] = [['base', 'base'], ...tasks.map((t): [string, string] => [t, `expert ${t}`]), ['multitask', 'multi-task']];
  const pct = (x: number) => (100 * x).toFixed(1);
  const rows = [['model', ...tasks, 'mean'], ...labels.map(([key, name]) => {
    const acc = tasks.map((t) => m.accuracy[key]?.[t]?.[split] ?? NaN);
    return [name, ...acc.map(pct), pct(acc.reduce((a, b) => a + b, 0) / acc.length)];
  })];
  return table(rows, new Set(tasks.map((_, i) => i + 1).concat(tasks.length + 1)));
}

export function registerZoo(program: Command): void {
  program
    .command('zoo')
    .description('build a small model zoo from scratch: a char-level tiny Llama base, one expert per synthetic task, a multi-task model')
    .requiredOption('--out <dir>', 'output folder (an existing zoo with the same configuration is reused)')
    .option('--seed <n>', 'seed of everything (default 0)', (v) => Number(v), 0)
    .option('--fast', 'the small configuration used by tests (seconds, weaker experts)')
    .option('--force', 'rebuild even when a matching zoo exists')
    .option('--json', 'print the manifest as JSON')
    .addHelpText('after', '\nExamples:\n  dfmerge zoo --out ./zoo\n  dfmerge zoo --out /tmp/zoo-fast --fast --seed 1')
    .action(async (opts: { out: string; seed: number; fast?: boolean; force?: boolean; json?: boolean }) => {
      if (!Number.isSafeInteger(opts.seed) || opts.seed < 0) throw new UsageError(`--seed must be a non-negative integer, got ${opts.seed}`);
      const { manifest, dir, reused } = await buildZoo({
        out: opts.out, seed: opts.seed, fast: opts.fast === true, force: opts.force === true,
        onProgress: (line) => process.stderr.write(line + '\n'),
      });
      if (opts.json) {
        process.stdout.write(JSON.stringify(manifest, null, 2) + '\n');
        return;
      }
      process.stdout.write(`zoo in ${dir}${reused ? ' (reused)' : ''}: test accuracy (%)\n${zooTable(manifest)}\n`);
    });
}
