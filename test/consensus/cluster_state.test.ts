import { describe, it } from "vitest";
import { ClusterState, FINISHED_JOBS_WITH_RESULTS, MAX_FINISHED_JOBS, RECENT_REQUESTS } from "../../src/consensus/cluster_state.js";
import type { Entry } from "../../src/consensus/types.js";
import { expectFor } from "./helpers.js";

let idx = 0;
const e = (data: unknown, type: Entry["type"] = "normal"): Entry => ({ index: ++idx, term: 1, type, data });

describe("cluster state machine", () => {
  it("applies topology, members, jobs and checkpoints; a task's result is accepted once", () => {
    const ex = expectFor("cluster-state-1");
    idx = 0;
    const s = new ClusterState();
    ex(s.apply(e({ voters: ["a", "b", "c"], learners: ["d"] }, "config")).ok).toBe(true);
    ex(s.members).toEqual({ voters: ["a", "b", "c"], learners: ["d"] });
    ex(s.apply(e({ type: "setTopology", name: "hyparview", options: { activeView: 5 } })).ok).toBe(true);
    ex(s.topology).toEqual({ name: "hyparview", options: { activeView: 5 }, index: 2 });
    ex(s.apply(e({ type: "createJob", jobId: "j1", spec: { kind: "evaluate", program: { x: 1 } } })).ok).toBe(true);
    ex(s.apply(e({ type: "setJobStatus", jobId: "j1", status: "running" })).ok).toBe(true);
    const c1 = s.apply(e({ type: "checkpoint", jobId: "j1", tasks: [{ taskId: "t1", digest: "h1" }, { taskId: "t2", digest: "h2" }] }));
    ex(c1.ok && c1.accepted).toBe(2);
    const c2 = s.apply(e({ type: "checkpoint", jobId: "j1", tasks: [{ taskId: "t2", digest: "other" }, { taskId: "t3", digest: "h3" }] }));
    ex(c2.ok && c2.accepted).toBe(1);
    const job = s.jobs.get("j1")!;
    ex(job.completed).toBe(3);
    ex(job.checkpoints.map((b) => b.tasks.map((t) => t.taskId))).toEqual([["t1", "t2"], ["t3"]]);
    ex(job.checkpoints[0]!.tasks[1]!.digest).toBe("h2");
    ex([...s.completedTasks("j1")].sort()).toEqual(["t1", "t2", "t3"]);
    ex(s.apply(e({ type: "setJobStatus", jobId: "j1", status: "done" })).ok).toBe(true);
    const late = s.apply(e({ type: "checkpoint", jobId: "j1", tasks: [{ taskId: "t9", digest: "h" }] }));
    ex(!late.ok && late.code).toBe("REJECTED");
    const back = s.apply(e({ type: "setJobStatus", jobId: "j1", status: "running" }));
    ex(!back.ok && back.message).toContain("cannot go from done to running");
    ex(s.appliedIndex).toBe(idx);
  });

  it("rejects bad commands with error values, never throws, and still consumes the entry", () => {
    const ex = expectFor("cluster-state-2");
    idx = 0;
    const s = new ClusterState();
    const bad: unknown[] = [
      { type: "nope" },
      { type: "setTopology" },
      { type: "setTopology", name: "", options: {} },
      { type: "createJob", jobId: "j", spec: () => 1 },
      { type: "createJob", jobId: "j", spec: {}, extra: true },
      { type: "checkpoint", jobId: "j", tasks: [] },
      "string",
      42,
      [1, 2],
      { type: "setJobStatus", jobId: "ghost", status: "running" },
      { type: "setJobStatus", jobId: "x", status: "exploded" },
    ];
    for (const b of bad) {
      const r = s.apply(e(b));
      ex(r.ok, JSON.stringify(b) ?? String(b)).toBe(false);
    }
    ex(s.appliedIndex).toBe(bad.length);
    ex(s.jobs.size).toBe(0);
    const again = s.apply({ index: 3, term: 1, type: "normal", data: null });
    ex(again.ok).toBe(false); // already applied index
  });

  it("requestId makes retried commands idempotent (bounded memory)", () => {
    const ex = expectFor("cluster-state-3");
    idx = 0;
    const s = new ClusterState();
    s.apply(e({ type: "createJob", jobId: "j", spec: {}, requestId: "r1" }));
    const dup = s.apply(e({ type: "createJob", jobId: "j", spec: {}, requestId: "r1" }));
    ex(dup.ok && dup.duplicate).toBe(true);
    for (let i = 0; i < RECENT_REQUESTS + 1; i++) s.apply(e({ type: "noop", requestId: `k${i}` }));
    const forgotten = s.apply(e({ type: "createJob", jobId: "j", spec: {}, requestId: "r1" }));
    ex(forgotten.ok).toBe(false); // r1 was forgotten; the job exists, so it is rejected rather than duplicated
  });

  it("snapshot/restore round-trips exactly; digests agree; malformed snapshots are refused", () => {
    const ex = expectFor("cluster-state-4");
    idx = 0;
    const a = new ClusterState();
    a.apply(e({ voters: ["a"], learners: [] }, "config"));
    a.apply(e({ type: "setTopology", name: "static", options: { peers: ["x"] } }));
    a.apply(e({ type: "createJob", jobId: "j", spec: { n: 1 }, requestId: "q" }));
    a.apply(e({ type: "setJobStatus", jobId: "j", status: "failed", error: "boom" }));
    const snap = JSON.parse(JSON.stringify(a.snapshot()));
    const b = new ClusterState();
    ex(b.restore(snap)).toEqual({ ok: true });
    ex(b.digest()).toBe(a.digest());
    ex(b.jobs.get("j")?.error).toBe("boom");
    const dup = b.apply(e({ type: "createJob", jobId: "j2", spec: {}, requestId: "q" }));
    ex(dup.ok && dup.duplicate).toBe(true); // idempotency keys survive snapshots
    const c = new ClusterState();
    ex(c.restore({ v: 2 }).ok).toBe(false);
    ex(c.restore(null).ok).toBe(false);
    ex(c.appliedIndex).toBe(0);
  });

  it("keeps the newest finished jobs only, the same on every replica; running jobs are never forgotten", () => {
    const ex = expectFor("cluster-state-6");
    idx = 0;
    const s = new ClusterState();
    s.apply(e({ type: "createJob", jobId: "long", spec: {} }));
    s.apply(e({ type: "setJobStatus", jobId: "long", status: "running" }));
    for (let i = 0; i < MAX_FINISHED_JOBS + 5; i++) {
      s.apply(e({ type: "createJob", jobId: `j${i}`, spec: {} }));
      s.apply(e({ type: "setJobStatus", jobId: `j${i}`, status: "running" }));
      s.apply(e({ type: "checkpoint", jobId: `j${i}`, tasks: [{ taskId: "t", digest: "d", result: { ok: true } }] }));
      s.apply(e({ type: "setJobStatus", jobId: `j${i}`, status: i % 2 ? "done" : "failed" }));
    }
    ex(s.jobs.size).toBe(MAX_FINISHED_JOBS + 1);
    ex(s.jobs.has("long")).toBe(true);
    // Only the newest finished jobs keep their per-task results; older ones keep the outcome.
    const newest = s.jobs.get(`j${MAX_FINISHED_JOBS + 4}`)!;
    ex([newest.checkpoints.length, newest.trimmed]).toEqual([1, undefined]);
    const older = s.jobs.get(`j${MAX_FINISHED_JOBS + 4 - FINISHED_JOBS_WITH_RESULTS}`)!;
    ex([older.checkpoints.length, older.trimmed, older.completed, older.status]).toEqual([0, true, 1, "failed"]);
    ex([...s.jobs.values()].filter((j) => j.checkpoints.length > 0).map((j) => j.jobId).sort()).toHaveLength(FINISHED_JOBS_WITH_RESULTS);
    ex([0, 1, 2, 3, 4].some((i) => s.jobs.has(`j${i}`))).toBe(false);
    ex(s.jobs.has(`j${MAX_FINISHED_JOBS + 4}`)).toBe(true);
    ex(s.completedTasks("j0").size).toBe(0);
    // A replica restored from a snapshot forgets the same ones afterwards.
    const r = new ClusterState();
    r.restore(JSON.parse(JSON.stringify(s.snapshot())));
    const more = e({ type: "createJob", jobId: "x", spec: {} });
    const fin = e({ type: "setJobStatus", jobId: "x", status: "cancelled" });
    for (const st of [s, r]) {
      st.apply(more);
      st.apply(fin);
    }
    ex(r.digest()).toBe(s.digest());
    ex(s.jobs.has("j5")).toBe(false);
  });

  it("sets, replaces and clears cluster-wide LM limits per provider; they survive snapshots; old snapshots restore", () => {
    const ex = expectFor("cluster-state-5");
    idx = 0;
    const s = new ClusterState();
    const noLimits = s.digest();
    ex(s.apply(e({ type: "setLmLimit", provider: "openai", rpm: 500 })).ok).toBe(true);
    ex(s.apply(e({ type: "setLmLimit", provider: "anthropic", rpm: 50, tpm: 40_000 })).ok).toBe(true);
    ex(s.lmLimits).toEqual({ openai: { rpm: 500, index: 1 }, anthropic: { rpm: 50, tpm: 40_000, index: 2 } });
    ex(s.apply(e({ type: "setLmLimit", provider: "openai", tpm: 1000 })).ok).toBe(true); // replaces, not merges
    ex(s.lmLimits.openai).toEqual({ tpm: 1000, index: 3 });
    for (const bad of [{ provider: "Open AI", rpm: 1 }, { provider: "openai", rpm: -1 }, { provider: "openai", rpm: 1, extra: 1 }, { provider: "" }]) {
      const r = s.apply(e({ type: "setLmLimit", ...bad }));
      ex(!r.ok && r.code).toBe("INVALID_COMMAND");
    }
    const snap = JSON.parse(JSON.stringify(s.snapshot()));
    ex(Object.keys(snap.lmLimits)).toEqual(["anthropic", "openai"]); // sorted: digests do not depend on order
    const b = new ClusterState();
    ex(b.restore(snap)).toEqual({ ok: true });
    ex(b.digest()).toBe(s.digest());
    ex(b.lmLimits).toEqual(s.lmLimits);
    ex(s.apply(e({ type: "setLmLimit", provider: "openai" })).ok).toBe(true); // neither rpm nor tpm: removed
    ex(s.apply(e({ type: "setLmLimit", provider: "anthropic" })).ok).toBe(true);
    ex(s.lmLimits).toEqual({});
    // Snapshots written before limits existed have no lmLimits field.
    const { lmLimits: _gone, ...old } = snap;
    const c = new ClusterState();
    ex(c.restore(old)).toEqual({ ok: true });
    ex(c.lmLimits).toEqual({});
    ex(new ClusterState().digest()).toBe(noLimits);
  });
});
