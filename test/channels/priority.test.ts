// Bulk parts yield to coordination requests to the same peer (yieldToPriority), for a bounded time.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { peerIdFromString } from "@libp2p/peer-id";
import { z } from "zod";
import type { Peer } from "../../src/cluster/peer.js";
import { peerPair } from "../cluster/peer_pair.js";
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

describe("bulk parts yield to coordination", () => {
  it("holds parts while a coordination request to the peer is out, at most ~20 ms per part, and the transfer still completes", async () => {
    expect(CHANNELS.coordination.priority).toBe(true);
    expect(CHANNELS.inference.yieldToPriority).toBe(true);
    const id = peerIdFromString(a.id);
    const holdMs = 400;
    a.channels.coordination.handle("hold", z.null(), () => new Promise((r) => setTimeout(() => r("ok"), holdMs)));
    const inf = b.channels.inference;
    const data = new Uint8Array(4 * 1024 * 1024);
    const parts = data.length / CHANNELS.inference.chunkBytes!;
    // Start the coordination request first, then the transfer: parts must trickle (one per
    // ~20 ms hold at most) until the reply, then go at full speed.
    const before = inf.stats.framesOut;
    const held = b.channels.coordination.request(id, "hold", null);
    const transfer = inf.request<{ n: number }>(id, "sink", { data }, { timeoutMs: 30_000 });
    await held;
    const duringHold = inf.stats.framesOut - before;
    // 400 ms / 20 ms = 20 parts if every hold ran its full cap; timers only fire late, never early.
    expect(duringHold).toBeLessThanOrEqual(holdMs / 20 + 2);
    expect(duringHold).toBeLessThan(parts);
    expect((await transfer).n).toBe(data.length);
  });

});
