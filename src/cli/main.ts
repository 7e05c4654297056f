/** The dfmerge command line: one sub-command per file in src/cli/. */
import { Command, CommanderError } from 'commander';
import { DfmergeError, UsageError, fileSystemError } from '../errors.js';
import { installSignalCleanup } from '../io/cleanup.js';
import { loadAddon } from '../native/addon.js';
import { VERSION } from '../version.js';
import { registerInspect } from './inspect.js';
import { registerExtractLora, registerMerge } from './merge.js';
import { registerOptimize } from './optimize.js';
import { registerEval } from './eval.js';
import { registerFisher } from './fisher.js';
import { registerZoo } from './zoo.js';
import { registerDemo } from './demo.js';

export function versionText(): string {
  const { addon, variant, path } = loadAddon();
  const b = addon.buildInfo();
  const devices = b.cudaDevices > 0 ? `${b.cudaDevices} (${b.cudaDeviceNames.join(', ')})` : '0';
  return [
    `dfmerge ${VERSION}`,
    `build: ${variant} (${path})`,
    `threads: ${b.threads}`,
    `cuda: ${b.cuda ? 'compiled in' : 'not compiled in'}, devices: ${devices}`,
    `node: ${process.version}, compiler: ${b.compiler}`,
  ].join('\n');
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('dfmerge')
    .description('Merge fine-tuned Llama-family models: DF-Merge (Fisher-weighted merging tuned by Bayesian optimisation) and the classic methods, streamed out of core by a native engine.')
    .option('-V, --version', 'print version, native build, threads and CUDA devices')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.on('option:version', () => {
    process.stdout.write(versionText() + '\n');
    process.exit(0);
  });
  registerInspect(program);
  registerMerge(program);
  registerExtractLora(program);
  registerOptimize(program);
  registerEval(program);
  registerFisher(program);
  registerZoo(program);
  registerDemo(program);
  return program;
}

/** Runs the CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  installSignalCleanup();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode;  // commander already printed help or the error
    }
    if (e instanceof UsageError) {
      process.stderr.write(`dfmerge: ${e.message}\n`);
      return 2;
    }
    if (e instanceof DfmergeError) {
      process.stderr.write(`dfmerge: ${e.message}\n`);
      return 1;
    }
    // a file-system error no command anticipated (disk full, read-only, permissions): still named, still exit 1
    const fs = fileSystemError(e);
    if (fs) {
      process.stderr.write(`dfmerge: ${fs.message}\n`);
      return 1;
    }
    throw e;
  }
}
