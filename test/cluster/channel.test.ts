// Channel behaviour between two in-process peers: large messages in parts, limits, timeouts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { z } from "zod";
import { Peer } from "../../src/cluster/peer.js";
import { newClusterKey } from "../../src/cluster/keys.js";

const key = newClusterKey();
let a: Peer;
let b: Peer;
beforeAll(async () => {
  a = await Peer.start({ clusterKey: key, telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
  b = await Peer.start({ clusterKey: key, telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
  await b.node.dial(multiaddr(a.multiaddrs()[0]), { signal: AbortSignal.timeout(10_000) });
});
afterAll(async () => {
  await b.stop();
  await a.stop();
});

describe("channels between two peers", () => {
  it("carries messages larger than a frame as parts and reassembles them", async () => {
    const data = new Uint8Array(10 * 1024 * 1024).map((_, i) => i % 251);
    const before = b.channels.inference.stats.framesOut;
    const r = (await b.channels.inference.request(peerIdFromString(a.id), "sink", { data })) as { n: number };
    expect(r.n).toBe(data.length);
    // 10 MiB in 64 KiB parts.
    expect(b.channels.inference.stats.framesOut - before).toBeGreaterThanOrEqual(160);
  });

  it("refuses to send messages over the channel's limit, naming it", async () => {
    const big = new Uint8Array(2 * 1024 * 1024);
    await expect(b.channels.coordination.request(peerIdFromString(a.id), "ping", { big })).rejects.toThrow(/exceeds the channel limit of 1048576/);
  });

  it("answers bad bodies with bad_request and unknown methods with unknown_method", async () => {
    a.channels.coordination.handle("add", z.object({ x: z.number(), y: z.number() }), ({ x, y }) => ({ sum: x + y }));
    const id = peerIdFromString(a.id);
    expect(await b.channels.coordination.request(id, "add", { x: 1, y: 2 })).toEqual({ sum: 3 });
    await expect(b.channels.coordination.request(id, "add", { x: "1" })).rejects.toMatchObject({ code: "bad_request" });
    await expect(b.channels.coordination.request(id, "nope", {})).rejects.toMatchObject({ code: "unknown_method" });
  });

  it("times out slow handlers and keeps serving others in parallel", async () => {
    a.channels.coordination.handle("slow", z.unknown(), () => new Promise((r) => setTimeout(() => r("late"), 500)));
    const id = peerIdFromString(a.id);
    const slow = b.channels.coordination.request(id, "slow", null, { timeoutMs: 100 });
    const fast = b.channels.coordination.request(id, "ping", null);
    await expect(slow).rejects.toMatchObject({ code: "timeout" });
    await expect(fast).resolves.toHaveProperty("t");
    expect(b.channels.coordination.stats.timeouts).toBeGreaterThanOrEqual(1);
  });

  it("handler errors become error replies, not crashes", async () => {
    a.channels.telemetry.handle("boom", z.unknown(), () => {
      throw Object.assign(new Error("kaput"), { code: "custom_failure" });
    });
    await expect(b.channels.telemetry.request(peerIdFromString(a.id), "boom", null)).rejects.toMatchObject({ code: "custom_failure", message: "kaput" });
    expect(a.channels.telemetry.stats.handlerErrors).toBe(1);
  });
});
