// LM response cache, like DSPy's: an in-memory LRU in front of an optional on-disk store,
// keyed by the sha256 of the canonical request. The key covers the model string, messages
// and every generation setting plus rolloutId; it never includes API keys or base URLs
// (as in DSPy, so a disk cache survives port and key changes).
//
// The disk store is safe for several processes sharing one directory: each entry is one
// file written to a unique temp name and renamed into place (rename is atomic on POSIX),
// so readers see either nothing or a whole entry. An unreadable or corrupt entry is a
// miss (and is overwritten by the next write); nothing is ever locked.
import { hash } from "node:crypto";
import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { LRUCache } from "lru-cache";
import { z } from "zod";
import type { ChatMessage, LMUsage, ResponseFormat } from "./types.js";
import { SURROGATE, textDigest } from "./texts.js";

export interface CachedReply {
  outputs: string[];
  finishReasons?: (string | null)[];
  model: string;
  /** Usage of the original call (reported as zero on hits). */
  usage: LMUsage;
}

export interface CacheOptions {
  /** In-memory LRU on/off. Default true. */
  memory?: boolean;
  /** LRU size in entries. Default 10,000. */
  maxEntries?: number;
  /** Directory of the disk cache; none = memory only. */
  dir?: string;
}

export interface CacheStats {
  hits: number;
  memoryHits: number;
  diskHits: number;
  misses: number;
  writes: number;
  corrupt: number;
  diskErrors: number;
}

export interface CacheKeyInput {
  model: string;
  messages: readonly ChatMessage[];
  temperature?: number;
  maxTokens?: number;
  n?: number;
  stop?: string[];
  topP?: number;
  responseFormat?: ResponseFormat;
  rolloutId?: number;
}

const DiskEntry = z.object({
  v: z.literal(1),
  key: z.string(),
  createdAt: z.number(),
  reply: z.object({
    outputs: z.array(z.string()),
    finishReasons: z.array(z.string().nullable()).optional(),
    model: z.string(),
    usage: z.object({
      promptTokens: z.number(),
      completionTokens: z.number(),
      totalTokens: z.number(),
      costUsd: z.number(),
    }),
  }),
});

/** JSON with object keys sorted, so equal requests hash equally whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

/** sha256 hex of the canonical request (no secrets, includes rolloutId). */
export function cacheKey(req: CacheKeyInput): string {
  // One string in a fixed field order, hashed in one call. Every message but the last stands
  // in by its own sha256, remembered for recurring texts (a predictor's system prompt and
  // demos, see texts.ts), so a call hashes its last message and a few digests, not the whole
  // prompt again. The last text goes in as is, length-prefixed (or JSON-escaped under another
  // tag if it has surrogates: UTF-8 would merge lone ones). Roles are fixed words and digests
  // base64, so neither holds a separator.
  const messages = req.messages;
  const last = messages.length - 1;
  let s = JSON.stringify(req.model);
  for (let i = 0; i < last; i++) s += `\u0000${messages[i].role}\u0000${textDigest(messages[i].content, true)}`;
  if (last >= 0) {
    const { role, content } = messages[last];
    s += SURROGATE.test(content) ? `\u0000${role}\u0002${JSON.stringify(content)}` : `\u0000${role}\u0003${content.length}:${content}`;
  }
  s +=
    `\u0001${req.temperature ?? ""}|${req.maxTokens ?? ""}|${req.n ?? ""}|${req.topP ?? ""}|${req.rolloutId ?? ""}|` +
    (req.stop ? JSON.stringify(req.stop) : "") +
    "|" +
    (req.responseFormat ? canonicalJson(req.responseFormat) : "");
  return hash("sha256", s, "hex");
}

export class LMCache {
  private readonly lru: LRUCache<string, CachedReply> | undefined;
  readonly dir: string | undefined;
  private readonly madeDirs = new Set<string>();
  private readonly pending = new Set<Promise<void>>();
  private tmpCounter = 0;
  readonly stats: CacheStats = { hits: 0, memoryHits: 0, diskHits: 0, misses: 0, writes: 0, corrupt: 0, diskErrors: 0 };

  constructor(options: CacheOptions = {}) {
    if (options.memory !== false) this.lru = new LRUCache({ max: options.maxEntries ?? 10_000 });
    this.dir = options.dir;
  }

  /** Memory lookup only (no I/O). */
  getMemory(key: string): CachedReply | undefined {
    const hit = this.lru?.get(key);
    if (hit) {
      this.stats.hits++;
      this.stats.memoryHits++;
    }
    return hit;
  }

  /** get() of a cache without a disk store, synchronously. */
  getNow(key: string): CachedReply | undefined {
    const mem = this.getMemory(key);
    if (!mem) this.stats.misses++;
    return mem;
  }

  async get(key: string): Promise<CachedReply | undefined> {
    const mem = this.getMemory(key);
    if (mem) return mem;
    if (this.dir) {
      const disk = await this.readDisk(key);
      if (disk) {
        this.stats.hits++;
        this.stats.diskHits++;
        this.lru?.set(key, disk);
        return disk;
      }
    }
    this.stats.misses++;
    return undefined;
  }

  /** Store a reply; the disk write runs in the background (see flush()). */
  set(key: string, reply: CachedReply): void {
    this.lru?.set(key, reply);
    this.stats.writes++;
    if (this.dir) {
      const p = this.writeDisk(key, reply).catch(() => {
        this.stats.diskErrors++;
      });
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
    }
  }

  /** Wait for background disk writes. */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  clearMemory(): void {
    this.lru?.clear();
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  private pathFor(key: string): { dir: string; file: string } {
    const dir = join(this.dir as string, key.slice(0, 2));
    return { dir, file: join(dir, `${key}.json`) };
  }

  private async readDisk(key: string): Promise<CachedReply | undefined> {
    const { file } = this.pathFor(key);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch {
      return undefined; // missing (or unreadable): a miss
    }
    try {
      const entry = DiskEntry.safeParse(JSON.parse(text));
      if (entry.success && entry.data.key === key) return entry.data.reply;
    } catch {
      // fall through: corrupt
    }
    this.stats.corrupt++;
    return undefined;
  }

  private async writeDisk(key: string, reply: CachedReply): Promise<void> {
    const { dir, file } = this.pathFor(key);
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.madeDirs.add(dir);
    }
    const tmp = `${file}.${process.pid}.${++this.tmpCounter}.${Math.random().toString(36).slice(2, 8)}.tmp`;
    const entry = { v: 1, key, createdAt: Date.now(), reply };
    try {
      await writeFile(tmp, JSON.stringify(entry));
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }
}

let defaultCacheInstance: LMCache | undefined;

/** The process-wide cache LMs use unless given their own (memory; disk if DSPEX_CACHE_DIR is set). */
export function defaultCache(): LMCache {
  if (!defaultCacheInstance) {
    const dir = process.env.DSPEX_CACHE_DIR;
    defaultCacheInstance = new LMCache({ dir: dir && dir.length > 0 ? dir : undefined });
  }
  return defaultCacheInstance;
}

/** Replace the process-wide cache (like dspy.configure_cache). */
export function configureCache(options: CacheOptions): LMCache {
  defaultCacheInstance = new LMCache(options);
  return defaultCacheInstance;
}
