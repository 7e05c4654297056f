/**
 * Checks of what a command is pointed at, before any runtime is built: a model
 * folder that is a folder, a config.json and tokenizer files that are regular
 * files holding JSON, weights that match the config exactly and hold no NaN or
 * infinity, task files that are regular files. Every failure names the path.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, TaskError, UsageError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { readJsonObjectFile, readRegularFile } from '../io/read_file.js';
import { checkConfigAgainstCheckpoint } from '../model/check_weights.js';
import { parseModelConfig } from '../model/config.js';

/** The model folder given with `flag`, checked: config against weights, finite values. */
export function checkModelFolder(dir: string, flag: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new UsageError(`${flag} ${dir}: no such folder`);
  }
  if (!st.isDirectory()) throw new CheckpointError(dir, 'NotAFolder', `${flag} expects a model folder (config.json, tokenizer.json, safetensors), but this is not a folder`);
  const configFile = join(dir, 'config.json');
  const raw = readJsonObjectFile(configFile, 'config.json');
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    const p = join(dir, f);
    try { statSync(p); } catch { continue; }
    readJsonObjectFile(p, f);
  }
  const config = parseModelConfig(raw, configFile);
  const ck = Checkpoint.open(dir);
  try {
    checkConfigAgainstCheckpoint(config, ck);
    ck.assertFinite();
  } finally {
    ck.close();
  }
}

/** A task file that can be read without blocking (a FIFO or a folder is refused). */
export function checkTaskFile(file: string): void {
  try {
    readRegularFile(file, 'task file', 0x7fffffff);
  } catch (e) {
    if (e instanceof Error) throw new TaskError(file, undefined, 'NotAFile', e.message.startsWith(file) ? e.message.slice(file.length + 2) : e.message);
    throw e;
  }
}
