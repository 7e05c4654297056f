// Small input files: FIFOs and devices refused without blocking, BOM dropped, empty/binary JSON named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonObjectFile, readTextFile } from '../../src/io/read_file.js';
import { tempDir } from '../helpers.js';

test('a FIFO, a device and a folder are refused at once (a FIFO would block a plain read forever)', () => {
  const d = tempDir();
  const fifo = join(d, 'config.json');
  execFileSync('mkfifo', [fifo]);
  assert.throws(() => readTextFile(fifo, 'config.json'), { code: 'NotAFile', message: /config\.json: config\.json is a FIFO \(named pipe\), expected a regular file/ });
  assert.throws(() => readTextFile('/dev/zero', 'task file'), { code: 'NotAFile', message: /^\/dev\/zero: task file is a character device/ });
  mkdirSync(join(d, 'sub'));
  assert.throws(() => readTextFile(join(d, 'sub')), { code: 'NotAFile', message: /sub: file is a folder/ });
  assert.throws(() => readTextFile(join(d, 'missing')), { code: 'NotFound', message: /missing: file does not exist/ });
});

test('a UTF-8 byte-order mark is dropped', () => {
  const d = tempDir();
  writeFileSync(join(d, 't.jsonl'), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}\n')]));
  assert.equal(readTextFile(join(d, 't.jsonl')), '{"a":1}\n');
});

test('empty, binary and non-object JSON are refused naming the file; "__proto__" stays a key', () => {
  const d = tempDir();
  const p = join(d, 'config.json');
  for (const [content, msg] of [['', /is empty/], ['\u0000\u0001\u00ff', /is not valid JSON/], ['[1,2]', /expected a JSON object/], ['{"a":', /is not valid JSON/]] as const) {
    writeFileSync(p, content);
    assert.throws(() => readJsonObjectFile(p, 'config.json'), { code: 'InvalidJson', message: new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: config\\.json ${msg.source}`) });
  }
  writeFileSync(p, '{"__proto__": {"x": 1}, "b": 2}');
  const o = readJsonObjectFile(p);
  assert.deepEqual(Object.keys(o), ['__proto__', 'b']);
  assert.equal(Object.getPrototypeOf(o), Object.prototype);
});
