// Durable Raft storage on disk for real peers: an append-only WAL of checksummed records
// (hard state, entries, snapshot references) plus snapshot files. Follows the contract in
// storage.ts: everything is fsynced before persist() returns, snapshot files are written
// to a temp name, fsynced, renamed and the directory fsynced before the WAL record that
// refers to them, and a torn tail (crash mid-append) is cut off on load.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync, ftruncateSync } from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { Encoder } from "cbor-x";
import { MemoryRaftStorage, type PersistUpdate, type RaftStorage } from "./storage.js";
import type { HardState, PersistedState, Snapshot } from "./types.js";

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });

type WalRecord =
  | { k: "hs"; hs: HardState }
  | { k: "ents"; e: PersistUpdate["entries"] }
  | { k: "snap"; file: string; resetLog: boolean };

const HEADER = 8; // u32 length + u32 crc32 of the payload

export class FileRaftStorage implements RaftStorage {
  private readonly mirror: MemoryRaftStorage;
  private fd: number;
  private readonly walPath: string;
  /** Bytes of the torn tail cut off while loading (0 = clean shutdown or clean crash). */
  readonly tornBytes: number = 0;
  /** fsync calls made (tests count them). */
  syncs = 0;
  private lastHs: HardState | null = null;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.walPath = join(dir, "raft.wal");
    this.mirror = new MemoryRaftStorage();
    if (existsSync(this.walPath)) this.tornBytes = this.replay();
    this.fd = openSync(this.walPath, "a");
    this.lastHs = this.mirror.load().hardState;
  }

  load(): PersistedState {
    return this.mirror.load();
  }

  persist(u: PersistUpdate): void {
    if (u.snapshot === null && u.entries.length === 0 && u.hardState === null) return;
    const records: WalRecord[] = [];
    if (u.snapshot !== null) {
      const file = this.writeSnapshotFile(u.snapshot);
      records.push({ k: "snap", file, resetLog: u.resetLog });
    }
    if (u.entries.length > 0) records.push({ k: "ents", e: u.entries });
    if (u.hardState !== null) records.push({ k: "hs", hs: u.hardState });
    const bufs = records.map(encodeRecord);
    const total = Buffer.concat(bufs);
    writeAll(this.fd, total);
    // Only a changed commit index may skip the fsync: losing it is safe.
    const onlyCommit =
      u.snapshot === null && u.entries.length === 0 && u.hardState !== null && this.lastHs !== null && u.hardState.term === this.lastHs.term && u.hardState.vote === this.lastHs.vote;
    if (!onlyCommit) {
      fsyncSync(this.fd);
      this.syncs++;
    }
    this.mirror.persist(u);
    if (u.hardState) this.lastHs = u.hardState;
    if (u.snapshot !== null) this.compact();
  }

  close(): void {
    closeSync(this.fd);
  }

  private writeSnapshotFile(s: Snapshot): string {
    const name = `snap-${s.index}-${s.term}.cbor`;
    const tmp = join(this.dir, `${name}.tmp`);
    const fd = openSync(tmp, "w");
    writeAll(fd, cbor.encode(s));
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, join(this.dir, name));
    this.syncDir();
    return name;
  }

  /** Rewrite the WAL as snapshot + hard state + remaining entries, then drop old snapshot files. */
  private compact(): void {
    const state = this.mirror.load();
    const tmp = `${this.walPath}.tmp`;
    const fd = openSync(tmp, "w");
    const records: WalRecord[] = [];
    if (state.snapshot) records.push({ k: "snap", file: `snap-${state.snapshot.index}-${state.snapshot.term}.cbor`, resetLog: true });
    if (state.entries.length) records.push({ k: "ents", e: state.entries });
    records.push({ k: "hs", hs: state.hardState });
    writeAll(fd, Buffer.concat(records.map(encodeRecord)));
    fsyncSync(fd);
    closeSync(fd);
    closeSync(this.fd);
    renameSync(tmp, this.walPath);
    this.syncDir();
    this.fd = openSync(this.walPath, "a");
    const keep = state.snapshot ? `snap-${state.snapshot.index}-${state.snapshot.term}.cbor` : "";
    for (const f of readdirSync(this.dir)) if (f.startsWith("snap-") && f !== keep) unlinkSafe(join(this.dir, f));
  }

  private replay(): number {
    const buf = readFileSync(this.walPath);
    let off = 0;
    while (off + HEADER <= buf.length) {
      const len = buf.readUInt32LE(off);
      const crc = buf.readUInt32LE(off + 4);
      if (off + HEADER + len > buf.length) break;
      const payload = buf.subarray(off + HEADER, off + HEADER + len);
      if (crc32(payload) !== crc) break;
      let rec: WalRecord;
      try {
        rec = cbor.decode(payload) as WalRecord;
      } catch {
        break;
      }
      if (rec.k === "hs") this.mirror.persist({ hardState: rec.hs, entries: [], snapshot: null, resetLog: false });
      else if (rec.k === "ents") this.mirror.persist({ hardState: null, entries: rec.e, snapshot: null, resetLog: false });
      else {
        const snap = cbor.decode(readFileSync(join(this.dir, rec.file))) as Snapshot;
        this.mirror.persist({ hardState: null, entries: [], snapshot: snap, resetLog: rec.resetLog });
      }
      off += HEADER + len;
    }
    const torn = buf.length - off;
    if (torn > 0) {
      // Cut the torn tail so new records follow the last good one.
      const fd = openSync(this.walPath, "r+");
      ftruncateSync(fd, off);
      fsyncSync(fd);
      closeSync(fd);
    }
    return torn;
  }

  private syncDir(): void {
    try {
      const fd = openSync(this.dir, "r");
      fsyncSync(fd);
      closeSync(fd);
    } catch {
      // Some filesystems do not support fsync on directories.
    }
  }
}

function encodeRecord(r: WalRecord): Buffer {
  const payload = cbor.encode(r);
  const head = Buffer.alloc(HEADER);
  head.writeUInt32LE(payload.length, 0);
  head.writeUInt32LE(crc32(payload), 4);
  return Buffer.concat([head, payload]);
}

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

function unlinkSafe(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    // already gone
  }
}
