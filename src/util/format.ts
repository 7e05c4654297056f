/** Human-readable numbers for CLI output. */

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u += 1;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** Parses "5GB", "500MB", "1.5G", "4096" (bytes, decimal units; KiB/MiB/GiB binary). */
export function parseByteSize(s: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$/i.exec(s);
  if (!m) return undefined;
  const value = Number(m[1]);
  const unit = (m[2] ?? 'b').toLowerCase();
  const binary = unit.includes('i');
  const letter = unit[0];
  const pow = letter === 'k' ? 1 : letter === 'm' ? 2 : letter === 'g' ? 3 : letter === 't' ? 4 : 0;
  const bytes = value * (binary ? 1024 : 1000) ** pow;
  return Number.isFinite(bytes) && bytes > 0 ? Math.floor(bytes) : undefined;
}

/** Left-aligned text table. */
export function table(rows: string[][], rightAlign: ReadonlySet<number> = new Set()): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length); });
  return rows
    .map((r) => r.map((c, i) => (rightAlign.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}
