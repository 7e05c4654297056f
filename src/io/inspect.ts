/** A summary of a checkpoint for `dfmerge inspect`: tensors, dtypes, shards, metadata. */
import { basename } from 'node:path';
import { Checkpoint } from './checkpoint.js';
import { byteSize, numelOf } from './dtypes.js';

export interface TensorSummary {
  name: string;
  dtype: string;
  shape: number[];
  parameters: number;
  bytes: number;
  file: string;
}

export interface CheckpointSummary {
  path: string;
  parameters: number;
  bytes: number;
  shards: { file: string; fileSize: number; tensors: number; metadata: Record<string, string> }[];
  dtypes: Record<string, { tensors: number; parameters: number; bytes: number }>;
  indexMetadata: Record<string, unknown> | null;
  tensors: TensorSummary[];
}

export function summarize(ck: Checkpoint): CheckpointSummary {
  const tensors: TensorSummary[] = [];
  const dtypes: CheckpointSummary['dtypes'] = {};
  for (const name of ck.names) {
    const { file, info } = ck.locate(name);
    const parameters = numelOf(info.shape);
    const bytes = byteSize(info.dtype, info.shape);
    tensors.push({ name, dtype: info.dtype, shape: [...info.shape], parameters, bytes, file: basename(file.path) });
    const d = (dtypes[info.dtype] ??= { tensors: 0, parameters: 0, bytes: 0 });
    d.tensors += 1;
    d.parameters += parameters;
    d.bytes += bytes;
  }
  return {
    path: ck.path,
    parameters: tensors.reduce((a, t) => a + t.parameters, 0),
    bytes: tensors.reduce((a, t) => a + t.bytes, 0),
    shards: ck.files.map((f) => ({ file: basename(f.path), fileSize: f.fileSize, tensors: f.tensors.length, metadata: { ...f.metadata } })),
    dtypes,
    indexMetadata: ck.index ? ck.index.metadata : null,
    tensors,
  };
}
