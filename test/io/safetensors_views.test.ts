/**
 * SafetensorsFile.bytes() hands out views of a few cached windows of the
 * mapping (1 GiB steps, 2 GiB each) instead of one external ArrayBuffer per
 * call, which V8 answered with a full garbage collection every few tensors
 * (docs/design.md §11). A sparse 2 GiB file puts tensors in the first window,
 * across its 1 GiB step, past it, and one longer than a window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { tempDir } from '../helpers.js';

const W = 2 ** 30;

test('tensor views share cached windows and read the right bytes anywhere in a 2 GiB file', () => {
  const dir = tempDir();
  const path = join(dir, 'sparse.safetensors');
  const spans: [string, number, number][] = [
    ['a', 0, 16],
    ['pad', 16, W - 8],
    ['cross', W - 8, W + 8],        // across the first window's 1 GiB step
    ['big', W + 8, 2 * W + 108],    // longer than a window: a view of its own
    ['tail', 2 * W + 108, 2 * W + 124],
  ];
  const h: Record<string, unknown> = {};
  for (const [name, b, e] of spans) h[name] = { dtype: 'U8', shape: [e - b], data_offsets: [b, e] };
  let json = Buffer.from(JSON.stringify(h));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const start = 8 + json.length;
  const fd = openSync(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, len, 0, 8, 0);
    writeSync(fd, json, 0, json.length, 8);
    ftruncateSync(fd, start + 2 * W + 124);  // sparse: no disk used for the zeros
    const mark = (name: string, at: number) => {
      const v = Buffer.from(Array.from({ length: 16 }, (_, i) => (name.charCodeAt(0) + i) & 0xff));
      writeSync(fd, v, 0, 16, start + at);
      return v;
    };
    const want = new Map<string, [number, Buffer]>([
      ['a', [0, mark('a', 0)]],
      ['cross', [0, mark('cross', W - 8)]],
      ['big', [W + 100 - 16, mark('big', 2 * W + 108 - 16)]],  // its last 16 bytes
      ['tail', [0, mark('tail', 2 * W + 108)]],
    ]);
    const f = SafetensorsFile.open(path);
    try {
      for (const [name, [at, v]] of want) {
        const bytes = f.bytes(name);
        const span = spans.find((s) => s[0] === name)!;
        assert.equal(bytes.byteLength, span[2] - span[1], name);
        assert.ok(Buffer.from(bytes.subarray(at, at + 16)).equals(v), `${name}: wrong bytes`);
      }
      // one window serves every tensor that starts in its first GiB
      assert.equal(f.bytes('a').buffer, f.bytes('cross').buffer);
      assert.equal(f.bytes('a').buffer, f.bytes('pad').buffer);
      assert.equal(f.bytes('tail').buffer, f.bytes('tail').buffer);
      assert.notEqual(f.bytes('tail').buffer, f.bytes('a').buffer);
      assert.ok(f.bytes('big').buffer.byteLength === W + 100);
    } finally {
      f.close();
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
});
