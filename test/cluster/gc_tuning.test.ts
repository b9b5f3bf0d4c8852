import { describe, expect, it } from "vitest";
import { growingPercentFor, heapGrowingPercent, SMALL_HEAP_BYTES, SMALL_HEAP_GROWING_PERCENT, tuneHeapForBulkTransfer } from "../../src/cluster/gc_tuning.js";

describe("heap tuning for peers", () => {
  it("uses the large growing factor only while the heap is small", () => {
    expect(growingPercentFor(22 * 1024 * 1024)).toBe(SMALL_HEAP_GROWING_PERCENT);
    expect(growingPercentFor(SMALL_HEAP_BYTES)).toBe(0);
    expect(growingPercentFor(2 * SMALL_HEAP_BYTES)).toBe(0);
  });

  it("applies to this process once (a test worker's heap is small)", () => {
    tuneHeapForBulkTransfer();
    expect(heapGrowingPercent()).toBe(SMALL_HEAP_GROWING_PERCENT);
    tuneHeapForBulkTransfer();
    expect(heapGrowingPercent()).toBe(SMALL_HEAP_GROWING_PERCENT);
  });
});
