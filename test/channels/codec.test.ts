import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame } from "../../channels/codec.js";

describe("encodeFrame", () => {
  it("returns frames that own exactly their bytes, unchanged by later encodes", () => {
    const small = encodeFrame({ t: 4, m: "a", b: 1 });
    const big = encodeFrame({ t: 1, id: 7, m: "sink", b: { data: new Uint8Array(1 << 20).fill(9) } });
    const after = [encodeFrame({ t: 4, m: "b", b: "x".repeat(100) }), encodeFrame({ t: 2, id: 3, b: [1, 2, 3] })];
    // No frame shares a buffer with the encoder (a shared, grown buffer outlives young GCs).
    for (const f of [small, big, ...after]) expect(f.buffer.byteLength).toBe(f.byteLength);
    expect(decodeFrame(small)).toEqual({ t: 4, m: "a", b: 1 });
    const d = decodeFrame(big) as { b: { data: Uint8Array } };
    expect(d.b.data.length).toBe(1 << 20);
    expect(d.b.data.every((x) => x === 9)).toBe(true);
    expect(decodeFrame(after[0])).toEqual({ t: 4, m: "b", b: "x".repeat(100) });
    expect(decodeFrame(after[1])).toEqual({ t: 2, id: 3, b: [1, 2, 3] });
  });

  it("keeps working after a value it cannot encode", () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => encodeFrame({ t: 4, m: "c", b: circular })).toThrow();
    expect(decodeFrame(encodeFrame({ t: 4, m: "d", b: 2 }))).toEqual({ t: 4, m: "d", b: 2 });
  });
});
