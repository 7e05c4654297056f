/** `dfmerge demo`: build (or reuse) the model zoo, merge its experts every way, print the comparison table. */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { runDemo } from '../demo/demo.js';
import { markdownTable } from '../dfmerge/report.js';
import { int } from './args.js';

interface Flags {
  zoo: string;
  out: string;
  seed: string;
  fast?: boolean;
  initPoints?: string;
  iterations?: string;
  fisherSamples: string;
  validationFraction: string;
  quiet?: boolean;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('the whole job on a self-made default: build a tiny model zoo (base, 4 experts, multi-task model), merge the experts with linear, task arithmetic, TIES, DARE, Fisher merging and DF-Merge, and print per-task test accuracy')
    .option('--zoo <dir>', 'zoo folder (reused when it matches)', 'dfmerge-zoo')
    .option('--out <dir>', 'where merges, journals and the report go', 'dfmerge-demo')
    .option('--seed <n>', 'seed of the zoo and the optimiser', '0')
    .option('--fast', 'the small zoo and a short optimisation (about a minute)')
    .option('--init-points <n>', 'DF-Merge random initial points (default 10; 4 with --fast)')
    .option('--iterations <n>', 'DF-Merge Bayesian-optimisation iterations (default 50 as in the paper; 4 with --fast)')
    .option('--fisher-samples <n>', 'Fisher examples per task', '30')
    .option('--validation-fraction <x>', 'fraction of each validation split DF-Merge evaluates', '0.5')
    .option('-q, --quiet', 'only the final table')
    .addHelpText('after', `
Run it twice: the second run reuses the zoo and the finished optimisations (journals in --out): no
training and no new DF-Merge evaluations, only the final merges and the comparison are recomputed.
An interrupted run continues where it stopped.`)
    .action(async (f: Flags) => {
      const fast = f.fast === true;
      const quiet = f.quiet === true;
      const log = (line: string) => { if (!quiet) process.stderr.write(line + '\n'); };
      const validationFraction = Number(f.validationFraction);
      if (!(validationFraction > 0 && validationFraction <= 1)) throw new UsageError(`--validation-fraction must be in (0, 1], got "${f.validationFraction}"`);
      const r = await runDemo({
        zoo: f.zoo, out: f.out, seed: int('--seed', f.seed, 0), fast,
        initPoints: int('--init-points', f.initPoints ?? (fast ? '4' : '10'), 1),
        iterations: int('--iterations', f.iterations ?? (fast ? '4' : '50'), 0),
        fisherSamples: int('--fisher-samples', f.fisherSamples, 1),
        validationFraction,
        log,
        onEvaluation: (e, best, total) => {
          if (quiet) return;
          const obj = e.failed ? 'failed' : `${(100 * e.objective!).toFixed(1)}%`;
          process.stderr.write(`  DF-Merge ${e.index + 1}/${total} (${e.phase}) λ=[${e.lambda.map((x) => x.toFixed(2)).join(', ')}] → ${obj}, best ${(100 * (best?.objective ?? 0)).toFixed(1)}% (${e.seconds.total.toFixed(1)} s)\n`);
        },
      });
      process.stdout.write(`\nTest accuracy (%) of each expert, each merge, and multi-task training\n\n${markdownTable(r.tasks, r.rows, 'test')}\n\n`);
      process.stdout.write(`time: zoo ${r.seconds.zoo.toFixed(0)} s, DF-Merge + baselines ${r.seconds.dfmerge.toFixed(0)} s, --no-fisher ${r.seconds.noFisher.toFixed(0)} s, total ${r.seconds.total.toFixed(0)} s\n`);
      process.stdout.write(`report: ${r.reportPath} (plot: dfmerge-objective.svg beside it); best merge: ${r.dfmerge.out}\n`);
    });
}
