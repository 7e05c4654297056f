/**
 * One timed merge in its own process (so its peak RSS is its own):
 *   node dist/benchmarks/merge/run_one.js METHOD BASE OUT MODEL...
 * prints {seconds, inputBytes, outputBytes, maxRssBytes} as JSON.
 */
import { runMerge } from '../../src/merge/run.js';
import { peakRssBytes } from '../../src/util/memory.js';
import { validateConfig, type MethodName } from '../../src/merge/config.js';

const [method, base, out, ...models] = process.argv.slice(2);
const params: Record<string, number> = method === 'ties' || method?.startsWith('dare') ? { density: 0.5 } : {};
const config = validateConfig({
  method: method as MethodName,
  base: base!,
  models: models.map((m) => ({ path: m, parameters: { weight: 1 / models.length } })),
  parameters: params,
  seed: 0,
});
const t0 = performance.now();
const r = await runMerge(config, { out: out!, force: true, quiet: true });
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(JSON.stringify({ seconds, inputBytes: r.inputBytes, outputBytes: r.outputBytes, maxRssBytes: peakRssBytes() }) + '\n');
