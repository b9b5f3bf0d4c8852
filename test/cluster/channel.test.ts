// Channel behaviour between two in-process peers: large messages in parts, limits, timeouts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { peerIdFromString } from "@libp2p/peer-id";
import { z } from "zod";
import { createLibp2p } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { noise } from "@libp2p/noise";
import { yamux } from "@libp2p/yamux";
import { lpStream } from "@libp2p/utils";
import type { Peer } from "../../src/cluster/peer.js";
import { peerPair } from "./peer_pair.js";
import { Channel } from "../../channels/channel.js";
import { CHANNELS } from "../../channels/specs.js";

let a: Peer;
let b: Peer;
let stop: () => Promise<void>;
beforeAll(async () => {
  ({ a, b, stop } = await peerPair());
});
afterAll(async () => {
  await stop();
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

  it("keeps bulk bytes in flight to a peer within the channel's window, both ways", async () => {
    const window = CHANNELS.inference.bulkWindowBytes!;
    expect(window).toBeGreaterThanOrEqual(CHANNELS.inference.chunkBytes!);
    const id = peerIdFromString(a.id);
    const unacked = (c: Channel, peer: string) => c.bulkUnacked(peer);
    a.channels.inference.handle("echo", z.object({ data: z.instanceof(Uint8Array) }), (x) => ({ data: x.data }));
    const data = new Uint8Array(6 * 1024 * 1024).map((_, i) => i % 253);
    let maxOut = 0;
    let maxBack = 0;
    const probe = setInterval(() => {
      maxOut = Math.max(maxOut, unacked(b.channels.inference, a.id));
      maxBack = Math.max(maxBack, unacked(a.channels.inference, b.id));
    }, 0);
    try {
      const replies = await Promise.all([1, 2, 3].map(() => b.channels.inference.request<{ data: Uint8Array }>(id, "echo", { data })));
      for (const r of replies) expect(Buffer.from(r.data).equals(Buffer.from(data))).toBe(true);
    } finally {
      clearInterval(probe);
    }
    expect(maxOut).toBeGreaterThan(0);
    expect(maxOut).toBeLessThanOrEqual(window);
    expect(maxBack).toBeGreaterThan(0);
    expect(maxBack).toBeLessThanOrEqual(window);
    // Everything was acknowledged (the acknowledgement of a reply's last part may still be on its way).
    expect(unacked(b.channels.inference, a.id)).toBe(0);
    for (let i = 0; i < 100 && unacked(a.channels.inference, b.id) > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(unacked(a.channels.inference, b.id)).toBe(0);
  });

  it("a receiver that never acknowledges parts stalls only its own transfer, which times out", async () => {
    const spec = { ...CHANNELS.inference, protocol: "/dspex/test-bulk/1.0.0", requestTimeoutMs: 800 };
    const mk = () => createLibp2p({ addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] });
    const [sender, mute] = await Promise.all([mk(), mk()]);
    // Reads everything, acknowledges nothing.
    await mute.handle(spec.protocol, (stream) => {
      const lp = lpStream(stream, { maxDataLength: spec.maxFrameBytes });
      void (async () => {
        for (;;) await lp.read();
      })().catch(() => undefined);
    });
    const channel = new Channel(sender, spec);
    await channel.start();
    try {
      await sender.dial(mute.getMultiaddrs()[0], { signal: AbortSignal.timeout(5000) });
      const t = performance.now();
      await expect(channel.request(mute.peerId, "sink", { data: new Uint8Array(2 * 1024 * 1024) })).rejects.toMatchObject({ code: "timeout" });
      expect(performance.now() - t).toBeLessThan(5000);
      // The stalled stream was given up and its credit returned: nothing leaks to later transfers.
      await new Promise((r) => setTimeout(r, 1000));
      expect(channel.bulkUnacked(mute.peerId.toString())).toBe(0);
    } finally {
      await channel.stop();
      await sender.stop();
      await mute.stop();
    }
  });
});
