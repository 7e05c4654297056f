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
