// Per-node durable key-value store: the only node state that survives a simulated crash.

/** Durable storage as seen by a protocol node (Raft keeps term, vote and log here). */
export interface DurableStorage {
  get<T = unknown>(key: string): T | undefined;
  has(key: string): boolean;
  /** Durable as soon as it returns (the simulator models an fsync per write). */
  set(key: string, value: unknown): void;
  delete(key: string): boolean;
  keys(): string[];
}

/**
 * In-memory {@link DurableStorage}. With `clone` (the simulator's default) values are
 * structured-cloned on write and on read, so a node can never change "persisted" state by
 * mutating an object it wrote earlier, nor smuggle in-memory state across a restart
 * through a shared reference. Turn cloning off only for speed with immutable values.
 */
export class MemoryStorage implements DurableStorage {
  private readonly data = new Map<string, unknown>();
  /** Number of `set`/`delete` calls that changed the store. */
  writes = 0;

  constructor(private readonly clone = true) {}

  get<T = unknown>(key: string): T | undefined {
    const v = this.data.get(key);
    return (this.clone && v !== null && typeof v === "object" ? structuredClone(v) : v) as T | undefined;
  }

  has(key: string): boolean {
    return this.data.has(key);
  }

  set(key: string, value: unknown): void {
    this.writes++;
    this.data.set(key, this.clone && value !== null && typeof value === "object" ? structuredClone(value) : value);
  }

  delete(key: string): boolean {
    const had = this.data.delete(key);
    if (had) this.writes++;
    return had;
  }

  keys(): string[] {
    return [...this.data.keys()];
  }
}
