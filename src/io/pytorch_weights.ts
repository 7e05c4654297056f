/**
 * PyTorch pickle checkpoints (`pytorch_model.bin`, its shards with
 * `pytorch_model.bin.index.json`, `*.pt`, Meta's `consolidated.*.pth`): dfmerge
 * reads safetensors only (no pickle is ever loaded: unpickling runs code), so these
 * are recognised and refused with the one-line conversion.
 */
import { readdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { CheckpointError } from '../errors.js';

/** File names of PyTorch weight files. */
const PYTORCH_WEIGHTS = /^(?:pytorch_model(?:-\d+-of-\d+)?\.bin|pytorch_model\.bin\.index\.json|adapter_model\.bin|.*\.pt|.*\.pth|consolidated\.\d+\.pth)$/;

export function isPytorchWeightsFile(name: string): boolean {
  return PYTORCH_WEIGHTS.test(name);
}

/** The PyTorch weight files in a folder (sorted), empty when there are none or it cannot be read. */
export function pytorchWeightsIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter(isPytorchWeightsFile).sort();
  } catch {
    return [];
  }
}

/** How to convert a folder to safetensors, in one line each way. */
export function conversionHint(dir: string): string {
  const out = `${dir.replace(/\/+$/, '')}-safetensors`;
  return 'convert it to safetensors first, e.g. with transformers:\n' +
    `  python -c "from transformers import AutoModelForCausalLM as M; M.from_pretrained('${dir}').save_pretrained('${out}', safe_serialization=True)"\n` +
    '(then copy the tokenizer files too, or use AutoTokenizer the same way), or with the safetensors project\'s convert script ' +
    '(https://github.com/huggingface/safetensors/blob/main/bindings/python/convert.py)';
}

/** Refuses a folder whose weights are PyTorch pickles only. */
export function refusePytorchFolder(dir: string, found: readonly string[]): never {
  const shown = found.length > 4 ? `${found.slice(0, 4).join(', ')}, … (${found.length} files)` : found.join(', ');
  throw new CheckpointError(dir, 'PytorchWeights', `holds PyTorch weights (${shown}) but no .safetensors file; dfmerge reads safetensors only (a pickle can run code when loaded): ${conversionHint(dir)}`);
}

/** Refuses a PyTorch weights file given where a checkpoint is expected. */
export function refusePytorchFile(file: string): never {
  throw new CheckpointError(file, 'PytorchWeights', `is a PyTorch weights file (${basename(file)}); dfmerge reads safetensors only (a pickle can run code when loaded): ${conversionHint(dirname(file))}`);
}
