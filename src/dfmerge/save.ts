/**
 * Writes flat merged parameters as a complete checkpoint folder: every tensor of
 * the base checkpoint, runtime parameters from the flat array or native buffer
 * (converted to the base tensor's dtype, or `dtype`, streamed in chunks through
 * the merge engine's writer output), anything else copied from the base; config
 * and tokenizer files copied. Files appear only when complete.
 */
import { mkdirSync } from 'node:fs';
import { Checkpoint } from '../io/checkpoint.js';
import { isComputeDtype } from '../io/dtypes.js';
import { CheckpointWriter } from '../io/writer.js';
import type { LlamaRuntime } from '../model/runtime.js';
import type { ComputeDtype, NativeFlat } from '../native/addon.js';
import { mergeTensor } from '../merge/kernels.js';
import { copySideFiles, removeStaleWeights } from '../merge/run.js';

export async function saveFlatCheckpoint(rt: LlamaRuntime, flat: NativeFlat, baseDir: string, out: string,
  options: { dtype?: ComputeDtype; shardSize?: number; metadata?: Record<string, string> } = {}): Promise<string[]> {
  const base = Checkpoint.open(baseDir);
  const views = rt.tensorViews(flat);
  mkdirSync(out, { recursive: true });
  let writer: CheckpointWriter | undefined;
  try {
    const specs = base.names.map((name) => {
      const info = base.locate(name).info;
      const dtype = views.has(name) && isComputeDtype(info.dtype) ? options.dtype ?? info.dtype : info.dtype;
      return { name, dtype, shape: info.shape };
    });
    writer = new CheckpointWriter(out, specs, {
      ...(options.shardSize !== undefined ? { shardSize: options.shardSize } : {}),
      metadata: { format: 'pt', merged_by: 'dfmerge', ...options.metadata },
    });
    for (const s of specs) {
      const v = views.get(s.name);
      if (v && isComputeDtype(s.dtype)) {
        // identity "merge" (1·x): the f32 → dtype conversion streamed into the writer
        await mergeTensor({ method: 'linear', tensor: s.name, models: [{ data: v, dtype: 'F32' }], weights: [1], normalize: false, out: { kind: 'writer', writer: writer.fileFor(s.name), tensor: s.name } });
      } else {
        writer.write(s.name, base.locate(s.name).file.bytes(s.name));
      }
    }
    const files = writer.finish();
    writer = undefined;
    removeStaleWeights(out, files);
    copySideFiles(base.dir, out, options.dtype);
    return files;
  } finally {
    writer?.abort();
    base.close();
  }
}
