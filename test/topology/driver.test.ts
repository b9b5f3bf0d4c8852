// The libp2p topology adapter on in-process peers (real libp2p on 127.0.0.1): bad wire input
// is counted and dropped, a switch never cuts an in-flight application request (and does
// close what nobody uses), a committed setTopology is applied, and the CLI flags validate.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createLibp2p } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { noise } from "@libp2p/noise";
import { yamux } from "@libp2p/yamux";
import { identify } from "@libp2p/identify";
import { preSharedKey } from "@libp2p/pnet";
import { multiaddr } from "@multiformats/multiaddr";
import { peerIdFromPublicKey, peerIdFromString } from "@libp2p/peer-id";
import { Peer, type PeerOptions } from "../../src/cluster/peer.js";
import { loadOrCreateIdentity, newClusterKey } from "../../src/cluster/keys.js";
import { RaftDriver } from "../../src/cluster/raft_driver.js";
import { silentLogger } from "../../src/cluster/log.js";
import { followCommitted, topologyFromFlags } from "../../src/cli/peer/topology.js";
import { Channel } from "../../channels/channel.js";
import { CHANNELS } from "../../channels/specs.js";
import { eventually } from "../cluster/helpers.js";

const key = newClusterKey();
const started: Peer[] = [];
const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanup) await c();
  await Promise.all(started.map((p) => p.stop()));
});

const quiet = { telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 };

async function cluster(n: number, extra: Partial<PeerOptions> = {}): Promise<Peer[]> {
  const first = await Peer.start({ clusterKey: key, ...quiet, ...extra });
  const rest = await Promise.all(Array.from({ length: n - 1 }, () => Peer.start({ clusterKey: key, bootstrap: [first.multiaddrs()[0]!], ...quiet, ...extra })));
  started.push(first, ...rest);
  return [first, ...rest];
}

const sessionsOf = (p: Peer) => p.topology.views().sessions;
const connectedTo = (a: Peer, b: Peer) => a.node.getConnections(peerIdFromString(b.id)).length > 0;

describe("topology driver on real libp2p peers", () => {
  it("counts and drops malformed topology frames; sessions and the peer keep working", { timeout: 30_000 }, async () => {
    const [a, b] = await cluster(2);
    await eventually(async () => (sessionsOf(a).includes(b.id) ? true : undefined), 10_000, "a session between the two peers");
    const node = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], connectionProtector: preSharedKey({ psk: key }), services: { identify: identify() } });
    const ch = new Channel(node, CHANNELS.coordination);
    cleanup.push(() => ch.stop(), () => node.stop());
    await node.dial(multiaddr(a.multiaddrs()[0]!), { signal: AbortSignal.timeout(10_000) });
    const to = peerIdFromString(a.id);
    const before = a.topology.views().stats.badFrames;
    const junk: unknown[] = [
      null,
      "hello",
      { s: 1 },
      { s: -1, m: [{ type: "hv.join" }] },
      { s: 1, m: [] },
      { s: 1, m: [{ type: "hv.nope" }] },
      { s: 1, m: [{ type: "hv.shuffle", origin: "x", ttl: 3, peers: [["p", -5]] }] },
      { s: 1, m: [{ type: "mb.sync", members: [{ id: "x", inc: "1", alive: true }], full: false, reply: false }] },
      { s: 1, m: [{ type: "fd.ping", seq: 1.5 }] },
      { s: 1, m: [{ type: "hv.forward_join", node: "n", ttl: 1e9 }] },
      { s: 1, m: [{ type: "pt.ihave", items: Array.from({ length: 5000 }, (_, i) => ({ id: `m${i}`, round: 0, rel: false })) }] },
    ];
    for (const body of junk) await ch.send(to, "topo", body);
    await ch.send(to, "topo.bye", { s: "x" });
    await expect(ch.request(to, "topo.hello", { s: "nope" }, { timeoutMs: 5000 })).rejects.toThrow(/bad topo.hello/);
    await eventually(async () => (a.topology.views().stats.badFrames >= before + junk.length + 2 ? true : undefined), 10_000, "every bad frame counted");
    // A well-formed frame for a session that does not exist is dropped too (and answered with a bye).
    const stale = a.topology.views().stats.staleFrames;
    await ch.send(to, "topo", { s: 42, m: [{ type: "hv.join" }] });
    await eventually(async () => (a.topology.views().stats.staleFrames > stale ? true : undefined), 10_000, "the stale frame counted");
    expect(a.topology.views().stats.nodeErrors).toBe(0);
    expect(sessionsOf(a)).toContain(b.id);
    expect((await ch.request(to, "status", null, { timeoutMs: 5000 })) as { topology: string }).toMatchObject({ topology: "full-mesh" });
  });

  it("a switch keeps a connection with an application request in flight, and closes idle ones", { timeout: 40_000 }, async () => {
    const [a, b, c] = await cluster(3, { topologyTuning: { transientIdleMs: 500, appIdleMs: 500 } });
    await eventually(async () => ([a, b, c].every((p) => sessionsOf(p).length === 2) ? true : undefined), 15_000, "a full mesh of three");
    // c answers "slow" after 4 s: longer than the grace before unwanted connections close.
    c.channels.inference.handle("slow", z.unknown(), async () => {
      await new Promise((r) => setTimeout(r, 4000));
      return { done: true };
    });
    const inflight = a.channels.inference.request(peerIdFromString(c.id), "slow", null, { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 200));
    // Nobody wants anybody any more.
    for (const p of [a, b, c]) p.setTopology("static", { peers: [] });
    // a-b carries no application traffic: it goes (session first, then the libp2p connection).
    await eventually(async () => (!connectedTo(a, b) && sessionsOf(a).length === 0 ? true : undefined), 15_000, "a-b closed after the switch");
    expect(connectedTo(a, c)).toBe(true); // still carrying the request
    await expect(inflight).resolves.toEqual({ done: true });
    await eventually(async () => (!connectedTo(a, c) ? true : undefined), 15_000, "a-c closed once the request finished");
    expect(a.topology.views().topology).toBe("static");
    expect(a.topology.views().switches).toBe(1);
  });

  it("applies a setTopology committed through Raft, ignoring a bad one", { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "dspex-topo-raft-"));
    const keys = await Promise.all([0, 1, 2].map((i) => loadOrCreateIdentity(join(dir, `id${i}.key`))));
    const voters = keys.map((k) => peerIdFromPublicKey(k.publicKey).toString());
    const first = await Peer.start({ clusterKey: key, identity: keys[0], ...quiet });
    const rest = await Promise.all([1, 2].map((i) => Peer.start({ clusterKey: key, identity: keys[i], bootstrap: [first.multiaddrs()[0]!], ...quiet })));
    const peers = [first, ...rest];
    started.push(...peers);
    const rafts = peers.map((p, i) => new RaftDriver(p, { dir: join(dir, `raft${i}`), voters, tickMs: 20 }));
    cleanup.push(() => rafts.forEach((r) => r.stop()));
    peers.forEach((p, i) => followCommitted(p, rafts[i]!, silentLogger));
    // Proposed on whoever leads (forwarding is Raft's business, not this test's); a repeat is harmless.
    const propose = (cmd: object, what: string) => eventually(async () => (rafts.find((r) => r.isLeader())?.propose(cmd).ok ? true : undefined), 20_000, what);
    await propose({ type: "setTopology", name: "hyparview", options: { expectedSize: 3 } }, "hyparview proposed");
    await eventually(async () => (peers.every((p) => p.topology.name === "hyparview") ? true : undefined), 15_000, "every peer switched to the committed hyparview");
    // The state machine accepts any name; the peers must not.
    await propose({ type: "setTopology", name: "ring", options: {} }, "a bad topology proposed");
    await eventually(async () => (rafts.every((r) => r.state.topology?.name === "ring") ? true : undefined), 15_000, "the bad command committed");
    await new Promise((r) => setTimeout(r, 300));
    expect(peers.map((p) => p.topology.name)).toEqual(["hyparview", "hyparview", "hyparview"]);
    expect((await peers[0]!.status()).committedTopology).toBe("ring");
  });
});

describe("dspex peer --topology flags", () => {
  it("accept valid choices and explain bad ones", () => {
    expect(topologyFromFlags({})).toBeUndefined();
    expect(topologyFromFlags({ topology: "hyparview", topologyOptions: '{"expectedSize": 100}' })).toEqual({ name: "hyparview", options: { expectedSize: 100 } });
    expect(topologyFromFlags({ topology: "static" })).toEqual({ name: "static", options: { peers: [] } });
    expect(() => topologyFromFlags({ topology: "ring" })).toThrow(/unknown topology "ring"; valid: full-mesh, hyparview, client-server, static/);
    expect(() => topologyFromFlags({ topology: "hyparview", topologyOptions: "{nope" })).toThrow(/--topology-options is not valid JSON/);
    expect(() => topologyFromFlags({ topology: "hyparview", topologyOptions: '{"activeSize": 0}' })).toThrow(/bad hyparview options at activeSize.*hyparview takes: expectedSize/);
    expect(() => topologyFromFlags({ topology: "hyparview", topologyOptions: '{"actveSize": 4}' })).toThrow(/actveSize/);
    expect(() => topologyFromFlags({ topology: "client-server" })).toThrow(/role/);
    expect(() => topologyFromFlags({ topologyOptions: "{}" })).toThrow(/--topology-options needs --topology/);
  });
});
