// full-mesh, client-server and static overlays in the simulator. Failures start with the seed.
import { describe, it } from "vitest";
import type { NodeId } from "../../src/sim/index.js";
import { ClientServer, FullMesh } from "../../topology/full-mesh.js";
import { expectFor, withSeed } from "../sim/helpers.js";
import { cluster, crashFraction, delivery, runUntil, type Cluster } from "./harness.js";

function fm(c: Cluster, i: NodeId): FullMesh {
  return c.node(i)!.manager as FullMesh;
}

/** Full-mesh invariant: every live node is connected to, and lists as a member, exactly the other live nodes. */
function fullMeshProblems(c: Cluster): string[] {
  const live = c.live();
  const out: string[] = [];
  for (const i of live) {
    const members = new Set(fm(c, i).members());
    if (members.size !== live.length - 1) out.push(`${i} lists ${members.size} members, ${live.length - 1} live`);
    if (c.sim.degree(i) !== live.length - 1) out.push(`${i} has ${c.sim.degree(i)} connections`);
    for (const j of live) if (j !== i && !members.has(j)) out.push(`${i} misses ${j}`);
    if (out.length > 10) break;
  }
  return out;
}

function bcast(c: Cluster, from: number, reliable = false): ReturnType<typeof delivery> {
  const id = c.broadcast(from, { from }, reliable);
  c.sim.run({ duration: 3000 });
  return delivery(c, id);
}

describe("full-mesh", () => {
  it("100 nodes: everyone connects to everyone; a crash leaves every member list within 3 s; 50% crash keeps >= 99% delivery", () => {
    const seed = 401;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      const c = cluster({ seed, n: 100, topology: "full-mesh", startSpreadMs: 2000 });
      const t = runUntil(c, () => fullMeshProblems(c).length === 0, 500, 15_000);
      ex(fullMeshProblems(c)).toEqual([]);
      ex(t).toBeLessThanOrEqual(15_000);
      let d = bcast(c, 42);
      ex(d.ratio).toBe(1);
      ex(d.duplicates).toBe(0);
      // Crash 10%: peers see the connection drop, re-dial twice, declare it dead and gossip it.
      crashFraction(c, 0.1, seed);
      const t0 = c.sim.now;
      const t1 = runUntil(c, () => fullMeshProblems(c).length === 0, 250, 3000);
      ex(fullMeshProblems(c), "dead nodes still listed 3 s after the crash").toEqual([]);
      ex(t1! - t0).toBeLessThanOrEqual(3000);
      crashFraction(c, 0.5, seed + 1);
      d = bcast(c, c.live()[0]!);
      ex(d.ratio).toBeGreaterThanOrEqual(0.99);
      runUntil(c, () => fullMeshProblems(c).length === 0, 250, 3000);
      ex(fullMeshProblems(c)).toEqual([]);
    });
  });

  it("a silently dead member is found by SWIM probing and its death spreads to every list", () => {
    const seed = 402;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      const c = cluster({ seed, n: 60, topology: "full-mesh", startSpreadMs: 1000, crashDetectionMs: 3_600_000 });
      runUntil(c, () => fullMeshProblems(c).length === 0, 500, 15_000);
      ex(fullMeshProblems(c)).toEqual([]);
      c.sim.crash(13);
      const t0 = c.sim.now;
      // Some node probes 13 within a few periods (59 probers, one target per second each);
      // then 2 probe periods + suspicion (3 s) + gossip rounds.
      const t = runUntil(c, () => c.live().every((i) => fm(c, i).entry(13)?.alive === false), 250, 20_000);
      ex(t, "death of 13 not known everywhere within 20 s").toBeDefined();
      ex(t! - t0).toBeLessThanOrEqual(12_000);
    });
  });

  it("partition then heal: both sides declare the other dead, then refute and re-mesh within 15 s", () => {
    const seed = 403;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      const c = cluster({ seed, n: 50, topology: "full-mesh", startSpreadMs: 1000 });
      runUntil(c, () => fullMeshProblems(c).length === 0, 500, 15_000);
      const a = c.live().filter((i) => i < 20);
      c.sim.partition([a]);
      c.sim.run({ duration: 10_000 });
      for (const i of a) ex(fm(c, i).members().length, `side A node ${i}`).toBe(19);
      c.sim.heal();
      const t0 = c.sim.now;
      const t = runUntil(c, () => fullMeshProblems(c).length === 0, 500, 15_000);
      ex(fullMeshProblems(c)).toEqual([]);
      ex(t! - t0).toBeLessThanOrEqual(15_000);
      ex(bcast(c, 3).ratio).toBe(1);
    });
  });
});

describe("client-server", () => {
  const servers = [0, 1, 2, 3, 4];
  const csCluster = (seed: number, n: number): Cluster =>
    cluster({
      seed,
      n,
      topology: "client-server",
      startSpreadMs: 3000,
      options: (i) => ({ role: i < servers.length ? "server" : "client", servers, serversPerClient: 2 }),
      bootstrap: () => [],
    });

  function csProblems(c: Cluster): string[] {
    const live = new Set(c.live());
    const liveServers = servers.filter((s) => live.has(s));
    const out: string[] = [];
    for (const i of live) {
      const peers = c.sim.peersOf(i) as number[];
      if (i < servers.length) {
        for (const s of liveServers) if (s !== i && !peers.includes(s)) out.push(`server ${i} not connected to server ${s}`);
      } else {
        const srv = peers.filter((p) => servers.includes(p));
        if (peers.some((p) => !servers.includes(p))) out.push(`client ${i} connected to a client`);
        if (srv.length !== Math.min(2, liveServers.length)) out.push(`client ${i} has ${srv.length} servers`);
      }
      if (out.length > 10) break;
    }
    return out;
  }

  it("500 nodes: clients keep 2 servers and no clients; servers mesh; broadcast from clients and servers reaches all; a server crash is repaired", () => {
    const seed = 501;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      const c = csCluster(seed, 500);
      const t = runUntil(c, () => csProblems(c).length === 0, 500, 15_000);
      ex(csProblems(c)).toEqual([]);
      ex(t).toBeLessThanOrEqual(15_000);
      ex(bcast(c, 250).ratio).toBe(1);
      ex(bcast(c, 2).ratio).toBe(1);
      // Server members know every live client.
      for (const s of servers) ex((c.node(s)!.manager as ClientServer).members().length, `server ${s} members`).toBe(499);
      // Crash a server and 20% of the clients.
      c.sim.crash(1);
      const dead = crashFraction(c, 0.2, seed, servers);
      const t0 = c.sim.now;
      const t1 = runUntil(c, () => csProblems(c).length === 0, 250, 5000);
      ex(csProblems(c), "not repaired 5 s after the crashes").toEqual([]);
      ex(t1! - t0).toBeLessThanOrEqual(5000);
      const t2 = runUntil(c, () => servers.filter((s) => s !== 1).every((s) => dead.every((d) => !c.node(s)!.members().includes(d))), 250, 5000);
      ex(t2, "dead clients still in server member lists after 5 s").toBeDefined();
      const d = bcast(c, c.live()[300]!);
      ex(d.ratio).toBeGreaterThanOrEqual(0.99);
    });
  });
});

describe("static", () => {
  it("keeps exactly the listed connections (ring) and re-dials after a restart", () => {
    const seed = 601;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      const n = 30;
      const c = cluster({ seed, n, topology: "static", options: (i) => ({ peers: [(i + 1) % n], redialMs: 300 }), bootstrap: () => [] });
      c.sim.run({ until: 5000 });
      for (let i = 0; i < n; i++) ex([...c.sim.peersOf(i)].sort((a, b) => Number(a) - Number(b))).toEqual([(i + n - 1) % n, (i + 1) % n].sort((a, b) => a - b));
      ex(bcast(c, 0).ratio).toBe(1);
      c.sim.crash(5);
      c.sim.run({ duration: 2000 });
      ex(c.sim.degree(4)).toBe(1);
      c.sim.restart(5);
      c.sim.run({ duration: 3000 });
      ex(c.sim.degree(5)).toBe(2);
      ex(c.sim.degree(4)).toBe(2);
      ex(bcast(c, 10).ratio).toBe(1);
    });
  });
});
