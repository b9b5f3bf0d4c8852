// Priority queue of simulator events: a binary min-heap keyed by (time, sequence).
// The sequence number is assigned on push, so events at the same virtual time pop in the
// order they were scheduled (stable, deterministic). Keys live in typed arrays next to the
// item array, so sifting touches contiguous memory and never dereferences the items; this
// matters once the queue holds hundreds of thousands of events.

export class EventQueue<T> {
  private times = new Float64Array(1024);
  private seqs = new Float64Array(1024);
  private items: T[] = [];
  private nextSeq = 0;

  /** Number of queued items. */
  get size(): number {
    return this.items.length;
  }

  /** Time of the earliest item, or Infinity when empty. */
  peekTime(): number {
    return this.items.length === 0 ? Infinity : this.times[0]!;
  }

  /** The earliest item without removing it. */
  peek(): T | undefined {
    return this.items[0];
  }

  /** Insert `item` at time `t`; returns its sequence number. */
  push(t: number, item: T): number {
    const s = this.nextSeq++;
    const items = this.items;
    let i = items.length;
    if (i === this.times.length) this.grow();
    items.push(item);
    const times = this.times;
    const seqs = this.seqs;
    while (i > 0) {
      const pi = (i - 1) >> 1;
      const pt = times[pi]!;
      if (pt < t || (pt === t && seqs[pi]! < s)) break;
      times[i] = pt;
      seqs[i] = seqs[pi]!;
      items[i] = items[pi]!;
      i = pi;
    }
    times[i] = t;
    seqs[i] = s;
    items[i] = item;
    return s;
  }

  /** Remove and return the earliest item. */
  pop(): T | undefined {
    const items = this.items;
    const n = items.length;
    if (n === 0) return undefined;
    const top = items[0]!;
    const last = items.pop()!;
    const size = n - 1;
    if (size === 0) return top;
    const times = this.times;
    const seqs = this.seqs;
    const t = times[size]!;
    const s = seqs[size]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= size) break;
      let ct = times[c]!;
      const r = c + 1;
      if (r < size) {
        const rt = times[r]!;
        if (rt < ct || (rt === ct && seqs[r]! < seqs[c]!)) {
          c = r;
          ct = rt;
        }
      }
      if (t < ct || (t === ct && s < seqs[c]!)) break;
      times[i] = ct;
      seqs[i] = seqs[c]!;
      items[i] = items[c]!;
      i = c;
    }
    times[i] = t;
    seqs[i] = s;
    items[i] = last;
    return top;
  }

  private grow(): void {
    const cap = this.times.length * 2;
    const t = new Float64Array(cap);
    t.set(this.times);
    this.times = t;
    const s = new Float64Array(cap);
    s.set(this.seqs);
    this.seqs = s;
  }
}
