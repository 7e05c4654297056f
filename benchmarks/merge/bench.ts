/**
 * Merge benchmark (docs/design.md §4): synthetic bf16 Llama-shaped checkpoints, every
 * method timed through the full path (mmap -> kernel -> output file), reported as
 * GB/s of (inputs read once + output written once), as a ratio to the streaming
 * bandwidth measured in the same run, and as a ratio to a PyTorch implementation
 * of the same merge (when a Python with torch is available), plus peak RSS.
 *
 *   node dist/benchmarks/merge/bench.js [--size 1GB] [--models 2] [--methods a,b] [--cold] [--no-torch] [--dir DIR]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, totalmem } from 'node:os';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { streamCopy } from '../../src/merge/kernels.js';
import { addon } from '../../src/native/addon.js';
import { formatBytes, parseByteSize, table } from '../../src/util/format.js';
import { makeSyntheticModels, shapeForBytes } from './synthetic.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');

function arg(name: string, dflt?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const size = parseByteSize(arg('size', '1GB')!)!;
const m = Number(arg('models', '2'));
const methods = (arg('methods', 'linear,task_arithmetic,ties,dare_linear,dare_ties')!).split(',');
const dataDir = arg('dir', join(root, 'benchmarks', '.data'))!;
const cold = flag('cold');

function python(): string | undefined {
  for (const p of [process.env.DFMERGE_PYTHON, join(root, '.venv', 'bin', 'python')]) {
    if (p && existsSync(p) && spawnSync(p, ['-c', 'import torch, safetensors'], { encoding: 'utf8' }).status === 0) return p;
  }
  return undefined;
}

function dropCaches(): boolean {
  spawnSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    return false;
  }
}

/** Streaming bandwidth: bytes read + written per second by a threaded copy of a buffer far larger than the caches. */
function streamBandwidth(): number {
  const n = 512 * 1024 * 1024;
  const src = new Uint8Array(n).fill(1);
  const dst = new Uint8Array(n).fill(2);
  streamCopy(src, dst);
  let best = 0;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    streamCopy(src, dst);
    best = Math.max(best, (2 * n) / ((performance.now() - t) / 1000));
  }
  return best;
}

const shape = shapeForBytes(size, 'BF16');
const tag = `bf16-L${shape.layers}-H${shape.hidden}-V${shape.vocab}-M${m}`;
const modelRoot = join(dataDir, tag);
if (!existsSync(join(modelRoot, 'done'))) {
  rmSync(modelRoot, { recursive: true, force: true });
  mkdirSync(modelRoot, { recursive: true });
  process.stderr.write(`creating synthetic checkpoints in ${modelRoot} (base + ${m} models of ~${formatBytes(size)})…\n`);
  makeSyntheticModels(modelRoot, shape, m, 1);
  writeFileSync(join(modelRoot, 'done'), '');
}
const base = join(modelRoot, 'base');
const models = Array.from({ length: m }, (_, k) => join(modelRoot, `model${k}`));
const outDir = join(dataDir, 'out');

const bw = streamBandwidth();
const py = flag('no-torch') ? undefined : python();
const info = addon().buildInfo();
process.stderr.write(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${formatBytes(totalmem())} RAM, ${info.threads} threads\n`);
process.stderr.write(`stream bandwidth (threaded copy, read+write): ${formatBytes(bw)}/s\n`);

interface Row { method: string; seconds: number; gbps: number; ofBw: number; rss: number; torchSeconds?: number }
const rows: Row[] = [];
for (const method of methods) {
  const runOnce = () => {
    if (cold && !dropCaches()) throw new Error('--cold needs permission to write /proc/sys/vm/drop_caches');
    const r = spawnSync(process.execPath, [join(here, 'run_one.js'), method, base, join(outDir, method), ...models], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${method} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as { seconds: number; inputBytes: number; outputBytes: number; maxRssBytes: number };
  };
  if (!cold) runOnce(); // warm the page cache with the inputs
  spawnSync('sync'); // no writeback of earlier outputs (or of the synthetic inputs) during the timed run
  const res = runOnce();
  const bytes = res.inputBytes + res.outputBytes;
  const row: Row = { method, seconds: res.seconds, gbps: bytes / res.seconds, ofBw: bytes / res.seconds / bw, rss: res.maxRssBytes };
  if (py) {
    if (cold) dropCaches();
    const t = spawnSync(py, [join(root, 'benchmarks', 'merge', 'torch_merge.py'), method, base, join(outDir, `torch-${method}`), ...models], { encoding: 'utf8' });
    if (t.status === 0) row.torchSeconds = (JSON.parse(t.stdout.trim().split('\n').pop()!) as { seconds: number }).seconds;
    else process.stderr.write(`torch ${method} failed: ${t.stderr.slice(-500)}\n`);
  }
  rows.push(row);
  process.stderr.write(`${method}: ${res.seconds.toFixed(2)} s\n`);
  rmSync(join(outDir, method), { recursive: true, force: true });
  rmSync(join(outDir, `torch-${method}`), { recursive: true, force: true });
}

const ck = Checkpoint.open(base);
const modelBytes = ck.totalBytes;
ck.close();
console.log(`\nmerge benchmark: base + ${m} models, ${formatBytes(modelBytes)} each (bf16), page cache ${cold ? 'cold' : 'warm'}`);
console.log(`stream bandwidth measured in this run: ${formatBytes(bw)}/s (read + write)\n`);
console.log(table([
  ['method', 'dfmerge s', 'GB/s (in+out)', '% of stream bw', 'peak RSS', 'PyTorch s', 'speed-up vs PyTorch'],
  ...rows.map((r) => [r.method, r.seconds.toFixed(2), (r.gbps / 1e9).toFixed(2), `${(100 * r.ofBw).toFixed(0)}%`, formatBytes(r.rss),
    r.torchSeconds !== undefined ? r.torchSeconds.toFixed(2) : 'n/a', r.torchSeconds !== undefined ? `${(r.torchSeconds / r.seconds).toFixed(1)}x` : 'n/a']),
], new Set([1, 2, 3, 4, 5, 6])));
