/**
 * Loading the addon bounds how long OpenMP's idle threads spin (GOMP_SPINCOUNT
 * 1000: src/native/addon.ts, docs/design.md §11), unless the user set a wait
 * policy or spin count: libgomp reads them when the addon loads it, so each
 * case runs in a fresh process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const addonModule = fileURLToPath(new URL('../../src/native/addon.js', import.meta.url));

function spinAfterLoad(env: Record<string, string>): string {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && k !== 'OMP_WAIT_POLICY' && k !== 'GOMP_SPINCOUNT') clean[k] = v;
  }
  const script = `const m = await import(${JSON.stringify(addonModule)}); m.addon().buildInfo();` +
    `process.stdout.write(String(process.env.GOMP_SPINCOUNT) + ' ' + String(process.env.OMP_WAIT_POLICY));`;
  return execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...clean, ...env }, encoding: 'utf8' });
}

test('the addon sets GOMP_SPINCOUNT=1000 before libgomp loads, and leaves a user setting alone', () => {
  assert.equal(spinAfterLoad({}), '1000 undefined');
  assert.equal(spinAfterLoad({ GOMP_SPINCOUNT: '50' }), '50 undefined');
  assert.equal(spinAfterLoad({ OMP_WAIT_POLICY: 'active' }), 'undefined active');
});
