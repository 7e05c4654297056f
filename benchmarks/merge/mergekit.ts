/**
 * mergekit's own `mergekit-yaml` on the benchmark's checkpoints, when it is
 * installed: the same method table (method_configs.ts) written as mergekit YAML,
 * run as a child process; wall time and the child's peak RSS (ru_maxrss).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { stringify as toYaml } from 'yaml';
import { BENCH_METHODS } from './method_configs.js';

export interface MergekitRun { seconds: number; maxRssBytes: number }

/** benchmarks/merge/mergekit_run.py (mergekit-yaml's entry point) when `python` can import mergekit, else undefined. */
export function findMergekit(python: string | undefined, runner: string): string | undefined {
  if (!python || !existsSync(runner)) return undefined;
  return spawnSync(python, ['-c', 'import mergekit.graph'], { encoding: 'utf8' }).status === 0 ? runner : undefined;
}

export function mergekitYaml(method: string, base: string, models: readonly string[]): string {
  const spec = BENCH_METHODS.get(method);
  if (!spec) throw new Error(`no benchmark configuration for ${method}`);
  const used = models.slice(0, spec.models(models.length));
  const per = spec.perModel(used.length);
  return toYaml({
    merge_method: method,
    ...(spec.base ? { base_model: base } : {}),
    models: used.map((m) => ({ model: m, ...(Object.keys(per).length ? { parameters: per } : {}) })),
    ...(Object.keys(spec.global).length ? { parameters: spec.global } : {}),
    dtype: 'bfloat16',
  });
}

/** Runs mergekit-yaml once through `runner` (a Python parent measures the child's time and peak RSS); undefined when it fails (stderr tail printed). */
export function runMergekit(python: string, runner: string, method: string, base: string, models: readonly string[], out: string, cfgPath: string): MergekitRun | undefined {
  writeFileSync(cfgPath, mergekitYaml(method, base, models));
  const wrapper = [
    'import json, resource, subprocess, sys, time',
    't = time.time()',
    'r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)',
    'dt = time.time() - t',
    'if r.returncode != 0: sys.stderr.write(r.stderr[-800:]); sys.exit(1)',
    'print(json.dumps({"seconds": dt, "maxRssBytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))',
  ].join('\n');
  const r = spawnSync(python, ['-c', wrapper, python, runner, cfgPath, out, '--allow-crimes', '--no-copy-tokenizer'], { encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(`mergekit ${method} failed: ${r.stderr.slice(-600)}\n`);
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as MergekitRun;
}
