import { appendFileSync, mkdtempSync, statSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createRng } from "../../src/sim/rng.js";
import { FileRaftStorage } from "../../src/consensus/file_storage.js";
import { MemoryRaftStorage, type PersistUpdate } from "../../src/consensus/storage.js";
import type { Entry, Snapshot } from "../../src/consensus/types.js";

const ent = (index: number, term: number): Entry => ({ index, term, type: "normal", data: { i: index, t: term } });
const snap = (index: number, term: number): Snapshot => ({ index, term, conf: { voters: ["a", "b"], learners: [] }, data: { at: index } });

describe("FileRaftStorage", () => {
  it("agrees with the in-memory storage on random update sequences, across reopen", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const dir = mkdtempSync(join(tmpdir(), "dspex-raft-"));
      const rng = createRng(seed, "file-storage");
      const mem = new MemoryRaftStorage();
      let file = new FileRaftStorage(dir);
      let last = 0;
      let term = 1;
      for (let step = 0; step < 60; step++) {
        const r = rng.next();
        let u: PersistUpdate;
        if (r < 0.6) {
          const from = Math.max(1, last + 1 - Math.floor(rng.next() * 3));
          const n = 1 + Math.floor(rng.next() * 4);
          const entries = Array.from({ length: n }, (_, i) => ent(from + i, term));
          last = from + n - 1;
          u = { hardState: { term, vote: "a", commit: Math.max(0, last - 2) }, entries, snapshot: null, resetLog: false };
        } else if (r < 0.8) {
          term++;
          u = { hardState: { term, vote: rng.next() < 0.5 ? "b" : null, commit: Math.max(0, last - 2) }, entries: [], snapshot: null, resetLog: false };
        } else if (r < 0.9 && last > 2) {
          u = { hardState: null, entries: [], snapshot: snap(last - 1, term), resetLog: false };
        } else {
          last += 5;
          u = { hardState: { term, vote: null, commit: last }, entries: [], snapshot: snap(last, term), resetLog: true };
        }
        mem.persist(u);
        file.persist(u);
        if (rng.next() < 0.2) {
          file.close();
          file = new FileRaftStorage(dir);
        }
        expect(file.load(), `seed=${seed} step=${step}`).toEqual(mem.load());
      }
      file.close();
    }
  });

  it("cuts a torn tail and keeps every complete record", () => {
    const dir = mkdtempSync(join(tmpdir(), "dspex-raft-"));
    const s = new FileRaftStorage(dir);
    s.persist({ hardState: { term: 2, vote: "a", commit: 1 }, entries: [ent(1, 1), ent(2, 2)], snapshot: null, resetLog: false });
    s.close();
    const wal = join(dir, "raft.wal");
    const good = statSync(wal).size;
    appendFileSync(wal, Buffer.from([40, 0, 0, 0, 1, 2, 3, 4, 9, 9])); // a record cut mid-write
    const reopened = new FileRaftStorage(dir);
    expect(reopened.tornBytes).toBe(10);
    expect(statSync(wal).size).toBe(good);
    expect(reopened.load().entries.map((e) => e.index)).toEqual([1, 2]);
    expect(reopened.load().hardState).toEqual({ term: 2, vote: "a", commit: 1 });
    reopened.persist({ hardState: null, entries: [ent(3, 2)], snapshot: null, resetLog: false });
    reopened.close();
    expect(new FileRaftStorage(dir).load().entries.map((e) => e.index)).toEqual([1, 2, 3]);
  });

  it("a corrupted record stops replay there (checksum)", () => {
    const dir = mkdtempSync(join(tmpdir(), "dspex-raft-"));
    const s = new FileRaftStorage(dir);
    s.persist({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [ent(1, 1)], snapshot: null, resetLog: false });
    const size = statSync(join(dir, "raft.wal")).size;
    s.persist({ hardState: null, entries: [ent(2, 1)], snapshot: null, resetLog: false });
    s.close();
    truncateSync(join(dir, "raft.wal"), size + 12); // second record damaged
    expect(new FileRaftStorage(dir).load().entries.map((e) => e.index)).toEqual([1]);
  });

  it("skips the fsync when only the commit index moved", () => {
    const dir = mkdtempSync(join(tmpdir(), "dspex-raft-"));
    const s = new FileRaftStorage(dir);
    s.persist({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [ent(1, 1)], snapshot: null, resetLog: false });
    const n = s.syncs;
    s.persist({ hardState: { term: 1, vote: "a", commit: 1 }, entries: [], snapshot: null, resetLog: false });
    expect(s.syncs).toBe(n);
    s.persist({ hardState: { term: 2, vote: null, commit: 1 }, entries: [], snapshot: null, resetLog: false });
    expect(s.syncs).toBe(n + 1);
    s.close();
  });
});
