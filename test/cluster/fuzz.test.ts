// Fuzzing every channel of a live peer: random bytes, oversize frames, valid CBOR of the
// wrong shape. Each is rejected and counted, the peer keeps serving, nothing is unhandled.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import "../../src/util/polyfill.js";
import { createLibp2p, type Libp2p } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { noise } from "@libp2p/noise";
import { yamux } from "@libp2p/yamux";
import { identify } from "@libp2p/identify";
import { preSharedKey } from "@libp2p/pnet";
import { lpStream } from "@libp2p/utils";
import { multiaddr } from "@multiformats/multiaddr";
import { Peer } from "../../src/cluster/peer.js";
import { newClusterKey } from "../../src/cluster/keys.js";
import { Channel } from "../../channels/channel.js";
import { encodeFrame } from "../../channels/codec.js";
import { CHANNELS, type ChannelName } from "../../channels/specs.js";

const key = newClusterKey();
let peer: Peer;
let attacker: Libp2p;

beforeAll(async () => {
  peer = await Peer.start({ clusterKey: key, telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
  attacker = await createLibp2p({
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: preSharedKey({ psk: key }),
    services: { identify: identify() },
  });
});
afterAll(async () => {
  await attacker.stop();
  await peer.stop();
});

/** Send raw frames on a fresh stream; the peer may close it or hang up on us: that is fine. */
async function openRaw(channel: ChannelName) {
  const addr = multiaddr(peer.multiaddrs()[0]);
  try {
    return await attacker.dialProtocol(addr, CHANNELS[channel].protocol, { signal: AbortSignal.timeout(5000) });
  } catch {
    // The peer hung up on our junk: drop the dead connection and dial again.
    await attacker.hangUp(addr).catch(() => undefined);
    return attacker.dialProtocol(addr, CHANNELS[channel].protocol, { signal: AbortSignal.timeout(5000) });
  }
}

async function sendRaw(channel: ChannelName, frames: Uint8Array[], rawPrefix?: Uint8Array): Promise<void> {
  try {
    const stream = await openRaw(channel);
    if (rawPrefix) {
      stream.send(rawPrefix);
    } else {
      const lp = lpStream(stream);
      for (const f of frames) await lp.write(f);
    }
    await new Promise((r) => setTimeout(r, 5));
    await stream.close().catch(() => undefined);
  } catch {
    // refused or disconnected: the defence working
  }
}

/** A well-behaved client (its own node) still gets answers after the fuzzing. */
async function stillServes(channel: ChannelName): Promise<void> {
  const node = await createLibp2p({
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: preSharedKey({ psk: key }),
    services: { identify: identify() },
  });
  const client = new Channel(node, CHANNELS[channel]);
  try {
    const conn = await node.dial(multiaddr(peer.multiaddrs()[0]), { signal: AbortSignal.timeout(5000) });
    const r = (await client.request(conn.remotePeer, "ping", null, { timeoutMs: 5000 })) as { t: number };
    expect(typeof r.t).toBe("number");
  } finally {
    await client.stop();
    await node.stop();
  }
}

const rejected = (c: ChannelName) => Object.values(peer.channels[c].stats.rejected).reduce((a, b) => a + b, 0);

describe.each(Object.keys(CHANNELS) as ChannelName[])("fuzzing the %s channel", (channel) => {
  it("random bytes are rejected and counted", { timeout: 60_000 }, async () => {
    const before = rejected(channel);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 512 }), { minLength: 1, maxLength: 4 }), async (frames) => {
        await sendRaw(channel, frames);
      }),
      { numRuns: 25, seed: 1234 },
    );
    await stillServes(channel);
    expect(rejected(channel)).toBeGreaterThan(before);
  });

  it("valid CBOR of the wrong shape is rejected and counted", { timeout: 60_000 }, async () => {
    const before = rejected(channel);
    const wrongShapes = fc.oneof(
      fc.anything(),
      fc.record({ t: fc.integer({ min: 5, max: 99 }), id: fc.integer(), m: fc.string() }),
      fc.record({ t: fc.constant(1), id: fc.integer({ max: -1 }), m: fc.constant("ping"), b: fc.anything() }),
      fc.record({ t: fc.constant(1), id: fc.nat(), m: fc.string({ minLength: 65, maxLength: 80 }), b: fc.constant(null) }),
      fc.record({ t: fc.constant(1), id: fc.nat(), m: fc.constantFrom("members", "nope"), b: fc.anything() }),
    );
    await fc.assert(
      fc.asyncProperty(wrongShapes, async (value) => {
        let bytes: Uint8Array;
        try {
          bytes = encodeFrame(value);
        } catch {
          return;
        }
        await sendRaw(channel, [bytes]);
      }),
      { numRuns: 40, seed: 4321 },
    );
    await stillServes(channel);
    expect(rejected(channel)).toBeGreaterThan(before);
  });

  it("oversize frames are rejected without buffering them", { timeout: 30_000 }, async () => {
    const before = peer.channels[channel].stats.rejected.oversize ?? 0;
    // A varint length prefix claiming 2^40 bytes, then a little data.
    const prefix = new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 1, 2, 3]);
    await sendRaw(channel, [], prefix);
    const tooBig = new Uint8Array(CHANNELS[channel].maxFrameBytes + 1);
    await sendRaw(channel, [tooBig]);
    await new Promise((r) => setTimeout(r, 100));
    expect(peer.channels[channel].stats.rejected.oversize ?? 0).toBeGreaterThan(before);
    await stillServes(channel);
  });
});

describe("bulk flow control", () => {
  it("acknowledgements of data never sent are rejected and counted, and the peer keeps serving", { timeout: 30_000 }, async () => {
    const before = peer.channels.inference.stats.rejected.bad_ack ?? 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 32 - 1 }), async (n) => {
        const ack = new Uint8Array(5);
        ack[0] = 0x03;
        new DataView(ack.buffer).setUint32(1, n);
        await sendRaw("inference", [ack]);
      }),
      { numRuns: 5, seed: 99 },
    );
    expect(peer.channels.inference.stats.rejected.bad_ack ?? 0).toBeGreaterThan(before);
    await stillServes("inference");
  });
});

describe("part framing", () => {
  const first = (total: number, data: Uint8Array) => {
    const f = new Uint8Array(5 + data.length);
    f[0] = 0x04;
    new DataView(f.buffer).setUint32(1, total);
    f.set(data, 5);
    return f;
  };
  const part = (flag: number, data: Uint8Array) => Uint8Array.of(flag, ...data);
  const count = (reason: string) => peer.channels.inference.stats.rejected[reason] ?? 0;

  it("handcrafted parts (length first, then data) reassemble into a request that is served", { timeout: 30_000 }, async () => {
    const msg = encodeFrame({ t: 1, id: 1, m: "sink", b: { data: new Uint8Array(300).fill(5) } });
    const stream = await openRaw("inference");
    const lp = lpStream(stream);
    await lp.write(first(msg.length, msg.subarray(0, 100)));
    await lp.write(part(0x01, msg.subarray(100, 200)));
    await lp.write(part(0x02, msg.subarray(200)));
    // Acknowledgements of the three parts' data, then the reply.
    const acked: number[] = [];
    let reply: Uint8Array | undefined;
    while (!reply) {
      const f = (await lp.read({ signal: AbortSignal.timeout(5000) })).subarray();
      if (f.length === 5 && f[0] === 0x03) acked.push(new DataView(f.buffer, f.byteOffset + 1, 4).getUint32(0));
      else reply = f;
    }
    expect(acked).toEqual([100, 100, msg.length - 200]);
    expect(reply[0]).not.toBe(0x04); // a small reply is one frame
    await stream.close().catch(() => undefined);
  });

  it("parts without a first part, lengths over the limit, and parts past the announced length are rejected and counted", { timeout: 60_000 }, async () => {
    const before = { bad: count("bad_envelope"), oversize: count("oversize") };
    const data = new Uint8Array(64).fill(1);
    await sendRaw("inference", [part(0x01, data), part(0x02, data)]);
    await sendRaw("inference", [first(CHANNELS.inference.maxMessageBytes! + 1, data)]);
    await sendRaw("inference", [first(100, data), part(0x02, data)]); // 128 bytes for 100 announced
    await sendRaw("inference", [first(1000, data), part(0x02, data)]); // ends short of 1000
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom(0x01, 0x02, 0x04), fc.uint8Array({ maxLength: 64 })), { minLength: 1, maxLength: 6 }), async (frames) => {
        await sendRaw("inference", frames.map(([flag, d]) => (flag === 0x04 ? first(d.length * 3, d) : part(flag, d))));
      }),
      { numRuns: 20, seed: 777 },
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(count("bad_envelope")).toBeGreaterThanOrEqual(before.bad + 3);
    expect(count("oversize")).toBeGreaterThan(before.oversize);
    await stillServes("inference");
  });
});

describe("junk senders", () => {
  it("are disconnected after repeated junk, and may reconnect", { timeout: 30_000 }, async () => {
    const before = peer.channels.coordination.stats.disconnects;
    for (let i = 0; i < 4; i++) await sendRaw("coordination", [new Uint8Array([0xff, 0xff, 0xff])]);
    expect(peer.channels.coordination.stats.disconnects).toBeGreaterThan(before);
    await stillServes("coordination");
  });
});
