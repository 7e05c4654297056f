// Seeded pseudo-random numbers for the Bayesian optimiser: xoshiro128** (Blackman &
// Vigna, 2018) in plain 32-bit integer arithmetic, seeded through splitmix32.
//
// Reproducibility rule of the optimiser: every random decision is drawn from a fresh
// Rng keyed by (seed, purpose, counters), e.g. (seed, SUGGEST, number of observations),
// never from one long-lived stream. A run resumed by replaying its observations
// therefore draws exactly the numbers an uninterrupted run would have drawn.

const TWO_POW_32 = 4294967296;

/** fmix32 finaliser of MurmurHash3: a bijective avalanche on 32-bit words. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Splits a safe integer into two 32-bit words (low, high); negative values wrap. */
function words(x: number): [number, number] {
  if (!Number.isSafeInteger(x)) throw new Error(`rng: seed/key ${x} is not a safe integer`);
  const lo = x >>> 0; // ToUint32 of the low bits, also right for negatives (two's complement)
  const hi = Math.floor(x / TWO_POW_32) >>> 0;
  return [lo, hi];
}

/**
 * Hashes a list of safe integers into one 32-bit word. Used to derive independent
 * streams: hashKey([seed, purpose, i]) for different (purpose, i) are unrelated seeds.
 */
export function hashKey(key: readonly number[]): number {
  let h = 0x243f6a88; // digits of π, any odd constant does
  for (const v of key) {
    const [lo, hi] = words(v);
    h = fmix32((h ^ lo) + 0x9e3779b9);
    h = fmix32((h ^ hi) + 0x7f4a7c15);
  }
  return fmix32(h ^ key.length);
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /**
   * @param seed a safe integer, or a key (list of safe integers) hashed into a seed;
   *   `new Rng([seed, purpose, i])` is the recommended way to make a keyed stream.
   */
  constructor(seed: number | readonly number[]) {
    const key = typeof seed === 'number' ? [seed] : seed;
    // splitmix32 expands the hashed key into the 128-bit state (never all zero).
    let x = hashKey(key);
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      return fmix32(x);
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32-bit unsigned integer (xoshiro128**). */
  nextUint32(): number {
    const s1 = this.s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform double in [lo, hi). */
  uniformIn(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Uniform integer in [0, n) for 1 ≤ n ≤ 2³² (rejection sampling, unbiased). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) throw new Error(`rng.int: bad range ${n}`);
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const r = this.nextUint32();
      if (r < limit) return r % n;
    }
  }

  /** Standard normal draw (Box–Muller, one of the pair; no cached state). */
  normal(): number {
    const u1 = 1 - this.uniform(); // (0, 1]
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
