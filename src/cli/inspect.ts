/** `dfmerge inspect <file-or-folder>`. */
import type { Command } from 'commander';
import { Checkpoint } from '../io/checkpoint.js';
import { modelDir } from '../io/hf_cache.js';
import { summarize, type CheckpointSummary } from '../io/inspect.js';
import { formatBytes, formatCount, table } from '../util/format.js';

export function renderSummary(s: CheckpointSummary, showTensors: boolean): string {
  const out: string[] = [];
  out.push(`${s.path}`);
  out.push(`  ${formatCount(s.tensors.length)} tensors, ${formatCount(s.parameters)} parameters, ${formatBytes(s.bytes)} of tensor data in ${s.shards.length} file${s.shards.length === 1 ? '' : 's'}`);
  out.push('', 'dtypes:');
  out.push(table(Object.entries(s.dtypes).map(([d, v]) =>
    ['  ' + d, `${formatCount(v.tensors)} tensors`, `${formatCount(v.parameters)} params`, formatBytes(v.bytes)]), new Set([1, 2, 3])));
  out.push('', 'files:');
  out.push(table(s.shards.map((f) => ['  ' + f.file, formatBytes(f.fileSize), `${formatCount(f.tensors)} tensors`,
    Object.entries(f.metadata).map(([k, v]) => `${k}=${v}`).join(' ')]), new Set([1, 2])));
  if (s.indexMetadata) out.push('', `index metadata: ${JSON.stringify(s.indexMetadata)}`);
  if (showTensors) {
    out.push('', 'tensors:');
    out.push(table([['  name', 'dtype', 'shape', 'params', 'file'],
      ...s.tensors.map((t) => ['  ' + t.name, t.dtype, `[${t.shape.join(', ')}]`, formatCount(t.parameters), t.file])], new Set([3])));
  }
  return out.join('\n');
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('validate a safetensors file or checkpoint folder and list its tensors, dtypes, shards and metadata')
    .argument('<path>', 'a .safetensors file, or a folder with model.safetensors or model.safetensors.index.json')
    .option('--json', 'print the summary as JSON')
    .option('--no-tensors', 'omit the per-tensor table')
    .option('--filter <regex>', 'only list tensors whose name matches this regular expression')
    .addHelpText('after', '\nExamples:\n  dfmerge inspect ./Llama-3.2-1B\n  dfmerge inspect model.safetensors --json\n  dfmerge inspect ./ckpt --filter "layers\\.0\\."')
    .action((path: string, opts: { json?: boolean; tensors: boolean; filter?: string }) => {
      const ck = Checkpoint.open(modelDir(path, 'inspect'));
      try {
        const s = summarize(ck);
        if (opts.filter !== undefined) {
          const re = new RegExp(opts.filter);
          s.tensors = s.tensors.filter((t) => re.test(t.name));
        }
        process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : renderSummary(s, opts.tensors) + '\n');
      } finally {
        ck.close();
      }
    });
}
