// Multi-process: real `dspex peer` processes join through one bootstrap address.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "../../src/util/polyfill.js";
import { createLibp2p } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { noise } from "@libp2p/noise";
import { yamux } from "@libp2p/yamux";
import { identify } from "@libp2p/identify";
import { ping } from "@libp2p/ping";
import { preSharedKey } from "@libp2p/pnet";
import { multiaddr } from "@multiformats/multiaddr";
import { newClusterKey, readClusterKey, writeClusterKey } from "../../src/cluster/keys.js";
import { queryStatus } from "../../src/cluster/client.js";
import { Channel } from "../../channels/channel.js";
import { CHANNELS } from "../../channels/specs.js";
import { eventually, spawnPeer, type PeerProc } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "dspex-peers-"));
const keyFile = join(dir, "cluster.key");
const wrongKey = join(dir, "wrong.key");
let key: Uint8Array;
const peers: PeerProc[] = [];

beforeAll(async () => {
  await writeClusterKey(keyFile);
  await writeClusterKey(wrongKey);
  key = await readClusterKey(keyFile);
  const first = await spawnPeer(["--key-file", keyFile]);
  peers.push(first);
  peers.push(...(await Promise.all([1, 2, 3, 4].map(() => spawnPeer(["--key-file", keyFile, "--bootstrap", first.addr])))));
}, 60_000);

afterAll(async () => {
  await Promise.all(peers.map((p) => p.stop()));
});

describe("five dspex peer processes", () => {
  it("all see each other, every channel answers, and telemetry reaches every peer", { timeout: 60_000 }, async () => {
    const statuses = await eventually(
      async () => {
        const all = await Promise.all(peers.map((p) => queryStatus(p.addr, key)));
        const ready = all.every(
          (s) =>
            s.members.length === 4 &&
            s.members.every((m) => m.telemetry && m.channels.inference?.ok && m.channels.coordination?.ok && m.channels.telemetry?.ok),
        );
        return ready ? all : undefined;
      },
      30_000,
      "full membership with healthy channels and telemetry",
    );
    for (const s of statuses) {
      expect(new Set(s.members.map((m) => m.id))).toEqual(new Set(peers.filter((p) => p.id !== s.peer).map((p) => p.id)));
    }
  });

  it("a peer with a wrong key or no key is refused", async () => {
    const wrong = await spawnPeer(["--key-file", wrongKey, "--bootstrap", peers[0].addr]);
    const open = await spawnPeer(["--insecure", "--bootstrap", peers[0].addr]);
    try {
      // Give them time to try; they must never appear as members.
      await new Promise((r) => setTimeout(r, 3000));
      const s = await queryStatus(peers[0].addr, key);
      expect(s.members.map((m) => m.id)).not.toContain(wrong.id);
      expect(s.members.map((m) => m.id)).not.toContain(open.id);
      await expect(queryStatus(peers[0].addr, newClusterKey(), 2000)).rejects.toThrow(/cannot reach/);
      await expect(queryStatus(peers[0].addr, undefined, 2000)).rejects.toThrow(/cannot reach/);
    } finally {
      await wrong.stop();
      await open.stop();
    }
  });

  it("a plain js-libp2p node with the key can identify the /dspex protocols, ping, and call each channel", async () => {
    const node = await createLibp2p({
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionProtector: preSharedKey({ psk: key }),
      services: { identify: identify(), ping: ping() },
    });
    try {
      const target = multiaddr(peers[1].addr);
      const conn = await node.dial(target, { signal: AbortSignal.timeout(10_000) });
      const protocols = await eventually(
        async () => {
          const p = (await node.peerStore.get(conn.remotePeer)).protocols;
          return p.includes("/dspex/coordination/1.0.0") ? p : undefined;
        },
        10_000,
        "identify",
      );
      expect(protocols).toEqual(expect.arrayContaining(["/dspex/inference/1.0.0", "/dspex/coordination/1.0.0", "/dspex/telemetry/1.0.0"]));
      const rtt = await node.services.ping.ping(target, { signal: AbortSignal.timeout(5000) });
      expect(rtt).toBeGreaterThanOrEqual(0);
      for (const spec of Object.values(CHANNELS)) {
        const ch = new Channel(node, spec);
        const reply = (await ch.request(conn.remotePeer, "ping", null, { timeoutMs: 5000 })) as { t: number };
        expect(typeof reply.t).toBe("number");
        await expect(ch.request(conn.remotePeer, "no-such-method", null, { timeoutMs: 5000 })).rejects.toThrow(/no 'no-such-method' method/);
        await ch.stop();
      }
    } finally {
      await node.stop();
    }
  });

  it("dspex peer refuses to start without a key and with bad addresses", { timeout: 90_000 }, async () => {
    await expect(spawnPeer([])).rejects.toThrow(/needs the cluster key/);
    writeFileSync(join(dir, "junk.key"), "not a key");
    await expect(spawnPeer(["--key-file", join(dir, "junk.key")])).rejects.toThrow(/not a cluster key/);
    await expect(spawnPeer(["--key-file", keyFile, "--bootstrap", "/ip4/127.0.0.1/tcp/1"])).rejects.toThrow(/lacks the peer id/);
  });
});
