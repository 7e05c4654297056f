/**
 * One timed merge in its own process (so its peak RSS is its own):
 *   node dist/benchmarks/merge/run_one.js METHOD BASE OUT MODEL...
 * runs METHOD with its benchmark configuration (method_configs.ts) and prints
 * {seconds, inputBytes, outputBytes, maxRssBytes} as JSON.
 */
import { runMerge } from '../../src/merge/run.js';
import { peakRssBytes } from '../../src/util/memory.js';
import { validateConfig, type MethodName } from '../../src/merge/config.js';
import { BENCH_METHODS } from './method_configs.js';

const [method, base, out, ...all] = process.argv.slice(2);
const spec = BENCH_METHODS.get(method!);
if (!spec) throw new Error(`no benchmark configuration for method ${method}`);
const models = all.slice(0, spec.models(all.length));
const config = validateConfig({
  method: method as MethodName,
  ...(spec.base ? { base: base! } : {}),
  models: models.map((m) => ({ path: m, parameters: spec.perModel(models.length) })),
  parameters: spec.global,
  seed: 0,
});
const t0 = performance.now();
const r = await runMerge(config, { out: out!, force: true, quiet: true });
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(JSON.stringify({ seconds, inputBytes: r.inputBytes, outputBytes: r.outputBytes, maxRssBytes: peakRssBytes() }) + '\n');
