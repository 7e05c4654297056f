/** `--seeds 1-10,15` → [1, …, 10, 15] (ranges inclusive); throws on an empty or malformed list. */
export function parseSeeds(spec: string): number[] {
  const seeds: number[] = [];
  for (const part of spec.split(',')) {
    const m = /^(\d+)-(\d+)$/.exec(part);
    if (m) for (let s = Number(m[1]); s <= Number(m[2]); s++) seeds.push(s);
    else if (part) seeds.push(Number(part));
  }
  if (seeds.length === 0 || seeds.some((s) => !Number.isSafeInteger(s))) throw new Error(`bad --seeds '${spec}'`);
  return seeds;
}

/** The value after `name` (e.g. "--seeds") on the command line, or undefined when the flag is absent. */
export function flagValue(name: string, argv: readonly string[] = process.argv.slice(2)): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** The number after `--name` on the command line, or `fallback` when the flag is absent; throws on a non-number. */
export function numberFlag(name: string, fallback: number, argv: readonly string[] = process.argv.slice(2)): number {
  const v = flagValue(`--${name}`, argv);
  if (v === undefined) return fallback;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new Error(`--${name} expects a number, got '${v}'`);
  return x;
}
