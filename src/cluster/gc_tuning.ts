// V8 heap tuning for a process that runs a peer (bulk transfers next to latency-sensitive
// coordination).
//
// V8 counts ArrayBuffer bytes allocated since the last full GC against the old-generation
// limit, and frees young ArrayBuffers only about every 32 MB of them. A peer moving data at
// full speed churns through such buffers (socket reads, pnet and Noise output, reassembled
// messages). With a small live heap (~22 MB for a peer) the limit V8 sets after a full GC
// leaves less room than that churn, and from then on every few MB transferred start another
// full GC: bench/channels measured 12-19 mark-compact pauses (3-15 ms each) per 50 MB once
// the processes had run a full GC, and those pauses set the coordination p99.
// A larger growing factor while the heap is small (next limit = 4x the live heap instead of
// V8's ~2x) leaves room for the churn: 0 mark-compacts per 50 MB in the same state
// (`npx tsx --expose-gc bench/channels.ts --aged`, and `--no-gc-tuning` for the comparison).
// Large heaps get V8's own factor back (4x of a large heap is memory nobody asked for).
// V8 reads the flag at each limit computation, so setting it at run time takes effect at the
// next full GC.
import { PerformanceObserver, constants } from "node:perf_hooks";
import { getHeapStatistics, setFlagsFromString } from "node:v8";

/** Growing factor 1 + 300% while the live heap is below SMALL_HEAP_BYTES. */
export const SMALL_HEAP_GROWING_PERCENT = 300;
export const SMALL_HEAP_BYTES = 256 * 1024 * 1024;

let observer: PerformanceObserver | undefined;
let current = -1;

function apply(percent: number): void {
  if (percent === current) return;
  current = percent;
  // 0 restores V8's own heuristics.
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/** The growing percent for a heap of `usedBytes` (0: V8's own factor). */
export function growingPercentFor(usedBytes: number): number {
  return usedBytes < SMALL_HEAP_BYTES ? SMALL_HEAP_GROWING_PERCENT : 0;
}

function retune(): void {
  apply(growingPercentFor(getHeapStatistics().used_heap_size));
}

/** Apply the peer heap tuning to this process and keep it matched to the heap size after every full GC. Idempotent. */
export function tuneHeapForBulkTransfer(): void {
  if (observer) return;
  retune();
  observer = new PerformanceObserver((list) => {
    if (list.getEntries().some((e) => (e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)) retune();
  });
  observer.observe({ entryTypes: ["gc"] });
}

/** The growing percent in force (0: V8's default), or -1 if tuning was never applied. */
export function heapGrowingPercent(): number {
  return current;
}
