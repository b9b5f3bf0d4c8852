import { describe, it } from "vitest";
import { createRng } from "../../src/sim/rng.js";
import { MemoryStorage } from "../../src/sim/storage.js";
import { KvRaftStorage, MemoryRaftStorage, type PersistUpdate } from "../../src/consensus/storage.js";
import type { Entry, Snapshot } from "../../src/consensus/types.js";
import { expectFor } from "./helpers.js";

const ent = (index: number, term: number): Entry => ({ index, term, type: "normal", data: { i: index, t: term } });
const snap = (index: number, term: number): Snapshot => ({ index, term, conf: { voters: ["a"], learners: [] }, data: { at: index } });

describe("raft storage", () => {
  it("applies snapshot, then entries (truncating), then hard state", () => {
    const ex = expectFor("storage-1");
    for (const st of [new MemoryRaftStorage(), new KvRaftStorage(new MemoryStorage())]) {
      st.persist({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [ent(1, 1), ent(2, 1), ent(3, 1)], snapshot: null, resetLog: false });
      st.persist({ hardState: { term: 2, vote: null, commit: 1 }, entries: [ent(2, 2)], snapshot: null, resetLog: false });
      let s = st.load();
      ex(s.entries.map((e) => `${e.index}@${e.term}`)).toEqual(["1@1", "2@2"]);
      ex(s.hardState).toEqual({ term: 2, vote: null, commit: 1 });
      st.persist({ hardState: null, entries: [ent(3, 2)], snapshot: snap(1, 1), resetLog: false }); // local compaction
      s = st.load();
      ex(s.snapshot?.index).toBe(1);
      ex(s.entries.map((e) => e.index)).toEqual([2, 3]);
      st.persist({ hardState: { term: 3, vote: null, commit: 10 }, entries: [], snapshot: snap(10, 3), resetLog: true }); // installed from leader
      s = st.load();
      ex(s.entries).toEqual([]);
      ex(s.snapshot?.index).toBe(10);
      st.persist({ hardState: null, entries: [ent(11, 3)], snapshot: null, resetLog: false });
      ex(st.load().entries.map((e) => e.index)).toEqual([11]);
    }
  });

  it("the key-value storage agrees with the in-memory one on random update sequences", () => {
    for (let seed = 1; seed <= 30; seed++) {
      const ex = expectFor(seed);
      const rng = createRng(seed, "storage");
      const mem = new MemoryRaftStorage();
      const kv = new KvRaftStorage(new MemoryStorage());
      let last = 0;
      let snapAt = 0;
      let term = 1;
      for (let step = 0; step < 60; step++) {
        let u: PersistUpdate;
        const r = rng.next();
        if (r < 0.6) {
          const from = Math.max(snapAt + 1, last + 1 - rng.int(Math.max(1, last - snapAt + 1)));
          const n = 1 + rng.int(4);
          if (rng.next() < 0.3) term++;
          const entries = Array.from({ length: n }, (_, k) => ent(from + k, term));
          last = from + n - 1;
          u = { hardState: { term, vote: null, commit: snapAt }, entries, snapshot: null, resetLog: false };
        } else if (r < 0.8 && last > snapAt) {
          snapAt = snapAt + 1 + rng.int(last - snapAt);
          u = { hardState: null, entries: [], snapshot: snap(snapAt, term), resetLog: false };
        } else {
          snapAt = last + rng.int(5);
          last = snapAt;
          u = { hardState: { term, vote: null, commit: snapAt }, entries: [], snapshot: snap(snapAt, term), resetLog: true };
        }
        mem.persist(u);
        kv.persist(u);
        const a = mem.load();
        const b = kv.load();
        ex(b.entries.filter((e) => e.index > (b.snapshot?.index ?? 0)), `step ${step}`).toEqual(a.entries.filter((e) => e.index > (a.snapshot?.index ?? 0)));
        ex(b.snapshot, `step ${step}`).toEqual(a.snapshot);
        ex(b.hardState, `step ${step}`).toEqual(a.hardState);
        // A reopened KV storage sees the same thing.
      }
    }
  });
});
