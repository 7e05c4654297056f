/**
 * A checkpoint: one safetensors file, or a Hugging Face folder holding either
 * `model.safetensors` or shards listed by `model.safetensors.index.json`.
 * Opening validates every file and the index (every shard and every named
 * tensor must exist; no tensor may live in two shards).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { CheckpointError } from '../errors.js';
import { SafetensorsFile, type TensorInfo } from './safetensors.js';
import { byteSize } from './dtypes.js';
import { InputFileError, readJsonObjectFile } from './read_file.js';
import { isPytorchWeightsFile, pytorchWeightsIn, refusePytorchFile, refusePytorchFolder } from './pytorch_weights.js';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface TensorLocation {
  readonly file: SafetensorsFile;
  readonly info: TensorInfo;
}

export interface ShardIndex {
  metadata: Record<string, unknown>;
  /** Tensor name → shard file name (a Map: names come from the file). */
  weightMap: Map<string, string>;
}

export class Checkpoint {
  /** The folder (or, for a bare file, the file's folder). */
  readonly dir: string;
  /** What the user named: a folder or a single .safetensors file. */
  readonly path: string;
  readonly files: readonly SafetensorsFile[];
  readonly index: ShardIndex | undefined;
  private readonly locations: Map<string, TensorLocation>;

  private constructor(path: string, dir: string, files: SafetensorsFile[], index: ShardIndex | undefined) {
    this.path = path;
    this.dir = dir;
    this.files = files;
    this.index = index;
    this.locations = new Map();
    for (const file of files) {
      for (const info of file.tensors) {
        const prior = this.locations.get(info.name);
        if (prior) {
          this.close();
          throw new CheckpointError(path, 'DuplicateTensor',
            `tensor "${info.name}" is stored in both ${basename(prior.file.path)} and ${basename(file.path)}`);
        }
        this.locations.set(info.name, { file, info });
      }
    }
    if (this.locations.size === 0) {
      this.close();
      throw new CheckpointError(path, 'NoTensors', 'holds no tensors (an empty checkpoint): nothing to load or merge');
    }
  }

  /** Opens a .safetensors file or a checkpoint folder. */
  static open(pathOrDir: string): Checkpoint {
    const path = resolve(pathOrDir);
    if (!existsSync(path)) throw new CheckpointError(path, 'NotFound', 'no such file or folder');
    const st = statSync(path);
    if (!st.isFile() && !st.isDirectory()) {
      throw new CheckpointError(path, 'NotACheckpoint', 'is neither a checkpoint folder nor a .safetensors file (a device, FIFO or socket)');
    }
    if (st.isFile()) {
      if (isPytorchWeightsFile(basename(path))) refusePytorchFile(path);
      return new Checkpoint(path, resolve(path, '..'), [SafetensorsFile.open(path)], undefined);
    }
    const indexPath = join(path, INDEX_FILE);
    if (existsSync(indexPath)) return new Checkpoint(path, path, openShards(path, indexPath), parseIndex(indexPath));
    const single = join(path, SINGLE_FILE);
    if (existsSync(single)) return new Checkpoint(path, path, [SafetensorsFile.open(single)], undefined);
    const found = readdirSync(path).filter((f) => f.endsWith('.safetensors'));
    if (found.length === 1) return new Checkpoint(path, path, [SafetensorsFile.open(join(path, found[0]!))], undefined);
    const pytorch = pytorchWeightsIn(path);
    if (found.length === 0 && pytorch.length > 0) refusePytorchFolder(path, pytorch);
    throw new CheckpointError(path, 'NoWeights', found.length === 0
      ? `no ${SINGLE_FILE}, no ${INDEX_FILE} and no other .safetensors file in this folder`
      : `${found.length} .safetensors files (${found.join(', ')}) but no ${INDEX_FILE} saying how they fit together`);
  }

  /** Tensor names, in file order then header order. */
  get names(): string[] {
    return [...this.locations.keys()];
  }

  has(name: string): boolean {
    return this.locations.has(name);
  }

  locate(name: string): TensorLocation {
    const loc = this.locations.get(name);
    if (!loc) throw new CheckpointError(this.path, 'TensorNotFound', `no tensor named "${name}"`);
    return loc;
  }

  /** Sum of tensor bytes (what an index's metadata.total_size should say). */
  /**
   * Refuses (SafetensorsError naming file, tensor and first element) a checkpoint
   * holding NaN or ±Inf: every evaluation, Fisher and merge would carry them. One
   * pass over the weights, each tensor's pages dropped behind the scan so the
   * resident peak stays one tensor.
   */
  assertFinite(): void {
    for (const name of this.names) {
      const { file } = this.locate(name);
      file.assertFinite(name);
      file.release(name);
    }
  }

  get totalBytes(): number {
    let n = 0;
    for (const { info } of this.locations.values()) n += byteSize(info.dtype, info.shape);
    return n;
  }

  /** config.json of the folder, parsed, or undefined when there is none. */
  config(): Record<string, unknown> | undefined {
    const p = join(this.dir, 'config.json');
    if (!existsSync(p)) return undefined;
    return readJsonObject(p);
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

function readJsonObject(path: string): Record<string, unknown> {
  try {
    return readJsonObjectFile(path, '');
  } catch (e) {
    if (e instanceof InputFileError) throw new CheckpointError(path, e.code, e.message.slice(path.length + 2));
    throw e;
  }
}

function parseIndex(indexPath: string): ShardIndex {
  const raw = readJsonObject(indexPath);
  const wm = raw.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    throw new CheckpointError(indexPath, 'InvalidIndex', 'missing "weight_map" object');
  }
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.length === 0 || shard === '.' || shard === '..' || /[/\\\0]/.test(shard)) {
      throw new CheckpointError(indexPath, 'InvalidIndex',
        `weight_map entry for "${name}" is ${JSON.stringify(shard)}, not the name of a shard file in this folder`);
    }
    weightMap.set(name, shard);
  }
  if (weightMap.size === 0) throw new CheckpointError(indexPath, 'InvalidIndex', 'weight_map is empty: the index lists no tensors');
  const md = raw.metadata;
  const metadata = typeof md === 'object' && md !== null && !Array.isArray(md) ? (md as Record<string, unknown>) : {};
  return { metadata, weightMap };
}

/** Opens every shard named by the index and checks the index against their headers. */
function openShards(dir: string, indexPath: string): SafetensorsFile[] {
  const index = parseIndex(indexPath);
  const shardNames = [...new Set(index.weightMap.values())].sort();
  const missing = shardNames.filter((s) => !existsSync(join(dir, s)));
  if (missing.length > 0) {
    throw new CheckpointError(indexPath, 'MissingShard', `shard file(s) listed in the index do not exist: ${missing.join(', ')}`);
  }
  const files: SafetensorsFile[] = [];
  try {
    for (const s of shardNames) files.push(SafetensorsFile.open(join(dir, s)));
    const byName = new Map(files.map((f) => [basename(f.path), f]));
    for (const [name, shard] of index.weightMap) {
      if (!byName.get(shard)!.has(name)) {
        throw new CheckpointError(indexPath, 'MissingTensor', `tensor "${name}" is mapped to ${shard}, which does not contain it`);
      }
    }
    for (const f of files) {
      for (const t of f.tensors) {
        if (index.weightMap.get(t.name) !== basename(f.path)) {
          throw new CheckpointError(indexPath, 'UnlistedTensor',
            `tensor "${t.name}" in ${basename(f.path)} is not mapped to that shard by the index`);
        }
      }
    }
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
  return files;
}
