import { describe, expect, it } from "vitest";
import { decodeClusterKey, pnetCipher } from "../../src/cluster/pnet.js";
import { newClusterKey } from "../../src/cluster/keys.js";

// Wire compatibility with @libp2p/pnet is tested end to end: a plain js-libp2p node using
// @libp2p/pnet talks to our peers (peers.test.ts, fuzz.test.ts, driver.test.ts).
describe("private network cipher", () => {
  const prebuilt = ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64", "win32-x64"].includes(`${process.platform}-${process.arch}`);
  it.skipIf(!prebuilt)("is libsodium where sodium-native ships a binary, not the slower fallback", () => {
    expect(pnetCipher).toBe("libsodium");
  });
});

describe("cluster key files", () => {
  it("yield the 32-byte key of a key written by dspex keygen", () => {
    const file = newClusterKey();
    const key = decodeClusterKey(file);
    expect(key.length).toBe(32);
    expect(Buffer.from(key).toString("hex")).toBe(Buffer.from(file).toString("utf8").split("\n")[2]);
  });

  it("refuse anything else, saying what a key file looks like", () => {
    const bad = ["", "/key/swarm/psk/1.0.0/\n/base16/\nabc", "/key/swarm/psk/1.0.0/\n/base64/\n" + "a".repeat(64), "hello\nworld\n" + "0".repeat(64)];
    for (const text of bad) expect(() => decodeClusterKey(new TextEncoder().encode(text))).toThrow(/not a cluster key.*dspex keygen/);
  });
});
