// Seeded pseudo-random numbers for the simulator and for protocol nodes.
// sfc32 (Chris Doty-Humphrey's Small Fast Counter): 128-bit state, passes PractRand,
// and is a handful of 32-bit integer ops per draw, so it is fast in V8 and bit-exact
// on every platform. Never use Math.random in simulated code.

/** A seeded random source. All methods are deterministic for a given seed. */
export interface Rng {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform unsigned 32-bit integer. */
  uint32(): number;
  /** Uniform integer in [0, n). `n` must be a positive integer below 2^32. */
  int(n: number): number;
  /** Uniform float in [min, max). */
  range(min: number, max: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** A uniformly chosen element; throws on an empty array. */
  pick<T>(items: readonly T[]): T;
  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[];
  /** A new independent generator derived from this one's next draws. */
  fork(): Rng;
}

/** 32-bit FNV-1a over a string, then finalised with a murmur3 mix. */
function hashString(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Combine seed parts (numbers or strings) into one 32-bit seed. Used to derive
 * independent streams: `deriveSeed(seed, "net")`, `deriveSeed(seed, "node", id, inc)`.
 * Numbers and strings hash differently (`1` and `"1"` give different seeds).
 */
export function deriveSeed(...parts: ReadonlyArray<string | number>): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    if (typeof p === "number") {
      // Fold integers exactly; non-integers go through their string form.
      if (Number.isInteger(p) && Math.abs(p) <= Number.MAX_SAFE_INTEGER) {
        const lo = p >>> 0;
        const hi = Math.floor(p / 4294967296) >>> 0;
        h = fmix32(Math.imul(h ^ lo, 0x01000193) ^ 0x6a09e667);
        h = fmix32(Math.imul(h ^ hi, 0x01000193) ^ 0xbb67ae85);
      } else {
        h = hashString("n:" + String(p), h);
      }
    } else {
      h = hashString("s:" + p, h);
    }
  }
  return h >>> 0;
}

/** sfc32 generator. Construct with any 32-bit seed (or use {@link deriveSeed}). */
export class Sfc32 implements Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    // splitmix32 expands the seed into the 128-bit state.
    let s = seed >>> 0;
    const sm = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      return (z ^ (z >>> 15)) >>> 0;
    };
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = 1;
    for (let i = 0; i < 12; i++) this.uint32();
  }

  uint32(): number {
    const a = this.a;
    const b = this.b;
    const c = this.c;
    const t = (((a + b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = b ^ (b >>> 9);
    this.b = (c + (c << 3)) | 0;
    const r = (c << 21) | (c >>> 11);
    this.c = (r + t) | 0;
    return t >>> 0;
  }

  next(): number {
    return this.uint32() / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  range(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("Rng.pick: empty array");
    return items[this.int(items.length)]!;
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }

  fork(): Rng {
    return new Sfc32(this.uint32() ^ Math.imul(this.uint32(), 0x9e3779b1));
  }
}

/** Create a generator from a numeric or string seed. */
export function createRng(seed: number | string, ...stream: ReadonlyArray<string | number>): Rng {
  return new Sfc32(deriveSeed(seed, ...stream));
}
