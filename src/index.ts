/** dfmerge public TypeScript API. */
export { SafetensorsFile, type TensorInfo } from './io/safetensors.js';
export { Checkpoint, type TensorLocation, INDEX_FILE, SINGLE_FILE } from './io/checkpoint.js';
export {
  SafetensorsWriter, CheckpointWriter, planShards, shardFileName, layoutSafetensors, writeFileAtomic,
  DEFAULT_SHARD_SIZE, WriteError, type TensorSpec, type Slot,
} from './io/writer.js';
export { summarize, type CheckpointSummary } from './io/inspect.js';
export { DTYPE_BITS, byteSize, numelOf, isComputeDtype } from './io/dtypes.js';
export { DfmergeError, SafetensorsError, CheckpointError, UsageError, NativeError, ConfigError, TaskError, TokenizerError, MergeError } from './errors.js';
export { readModelConfig, parseModelConfig, type ModelConfig, type Architecture } from './model/config.js';
export { ModelTokenizer } from './model/tokenizer.js';
export { LlamaRuntime, RuntimeError, finalizeFisher, type WeightSource, type TokenizedExample } from './model/runtime.js';
export * from './eval/index.js';
export * from './fisher/index.js';
export { loadAddon, type ComputeDtype } from './native/addon.js';
export { VERSION } from './version.js';
export { runMerge, type MergeRunOptions, type MergeResult } from './merge/run.js';
export { loadConfigFile, validateConfig, METHODS, type MergeConfig, type MethodName, type ModelEntry } from './merge/config.js';
export { mergeTensor, accumulateFisher as accumulateFisherTensor, dfCombine, fnv1a64, type MergeTensorRequest } from './merge/kernels.js';
export { optimize, OPTIMIZE_DEFAULTS, type OptimizeOptions, type OptimizeResult } from './dfmerge/optimize.js';
export { BayesianOptimizer } from './bo/optimizer.js';
export { runDemo, type DemoOptions, type DemoResult } from './demo/demo.js';
export { buildZoo, type ZooManifest } from './zoo/zoo.js';
