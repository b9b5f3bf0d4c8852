// Deterministic, fast string hashing for sim-lm decisions (cyrb53: 53-bit, good avalanche).
// Not cryptographic; only needs to be stable across runs and platforms.

export function hash53(text: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** Uniform number in [0, 1) from the seed and the parts. */
export function unit(seed: number, ...parts: (string | number)[]): number {
  return hash53(parts.join("\u241f"), seed | 0) / 9007199254740992;
}

/** Integer in [0, n) from the seed and the parts. */
export function pick(n: number, seed: number, ...parts: (string | number)[]): number {
  return Math.floor(unit(seed, ...parts) * n);
}

/** Approximate token count: ~4 characters per token, at least 1 for non-empty text. */
export function countTokens(text: string): number {
  return text.length === 0 ? 0 : Math.ceil(text.length / 4);
}
