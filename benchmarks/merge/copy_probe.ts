/**
 * The benchmark's file-to-file baseline, in its own process like each merge:
 *   node dist/benchmarks/merge/copy_probe.js OUT BASE MODEL...
 * streams every tensor of every input the way a merge reads it (pread into
 * staging buffers) and writes the base's tensors into a new file the way a merge
 * writes (pwrite into the slots, each finished tensor handed to writeback while
 * the next is copied, then fsync): a merge minus its arithmetic.
 * Prints {seconds, inputBytes, outputBytes, maxRssBytes} as JSON.
 */
import { closeSync, fsyncSync, ftruncateSync, openSync, unlinkSync } from 'node:fs';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { isComputeDtype } from '../../src/io/dtypes.js';
import { addon } from '../../src/native/addon.js';
import { peakRssBytes } from '../../src/util/memory.js';

const [out, ...dirs] = process.argv.slice(2);
const t0 = performance.now();
const cks = dirs.map((d) => Checkpoint.open(d));
let offset = 0;
let previous = 0;  // where the tensor before the current one starts
let inputBytes = 0;
const fd = openSync(out!, 'wx', 0o644);
try {
  ftruncateSync(fd, cks[0]!.totalBytes);
  for (const name of cks[0]!.names) {
    const views = cks.map((ck) => {
      const { file, info } = ck.locate(name);
      if (!isComputeDtype(info.dtype)) throw new Error(`${name}: not a float tensor`);
      return { data: file.bytes(name), dtype: info.dtype };
    });
    const bytes = views[0]!.data.byteLength;
    const running = addon().fileCopyProbe({ inputs: views, n: bytes / (views[0]!.dtype === 'F32' ? 4 : 2), fd, offset });
    // the previous tensor's bytes handed to writeback while this one is copied, as runMerge does
    if (offset > previous) addon().startWriteback(fd, previous, offset - previous);
    await running;
    previous = offset;
    offset += bytes;
    inputBytes += bytes * views.length;
  }
  fsyncSync(fd);
} finally {
  closeSync(fd);
  unlinkSync(out!);
  for (const ck of cks) ck.close();
}
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(JSON.stringify({ seconds, inputBytes, outputBytes: offset, maxRssBytes: peakRssBytes() }) + '\n');
