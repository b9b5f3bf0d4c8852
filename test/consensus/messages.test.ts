import { describe, it } from "vitest";
import { parseRaftMessage } from "../../src/consensus/messages.js";
import { expectFor } from "./helpers.js";

describe("raft wire messages", () => {
  it("accepts well-formed messages and rejects malformed, impersonating or inconsistent ones", () => {
    const ex = expectFor("messages-1");
    const app = { type: "app", from: "a", to: "b", term: 3, index: 4, logTerm: 2, commit: 4, entries: [{ index: 5, term: 3, type: "normal", data: { x: 1 } }] };
    ex(parseRaftMessage(app, "a").ok).toBe(true);
    ex(parseRaftMessage({ type: "heartbeat", from: "a", to: "b", term: 1, commit: 0, context: null }).ok).toBe(true);
    const bad: Array<[unknown, string | undefined]> = [
      [null, undefined],
      [{ type: "app" }, undefined],
      [{ ...app, term: -1 }, undefined],
      [{ ...app, term: 1.5 }, undefined],
      [{ ...app, extra: 1 }, undefined],
      [{ ...app, type: "bogus" }, undefined],
      [app, "mallory"], // impersonation
      [{ ...app, entries: [{ index: 7, term: 3, type: "normal", data: null }] }, undefined], // gap
      [{ ...app, entries: [{ index: 5, term: 9, type: "normal", data: null }] }, undefined], // entry from the future
      [{ ...app, entries: [{ index: 5, term: 3, type: "config", data: { voters: "a" } }] }, undefined],
      [{ type: "vote", from: "a", to: "b", term: 2, index: 1, logTerm: 1 }, undefined], // transfer missing
    ];
    for (const [m, sender] of bad) ex(parseRaftMessage(m, sender).ok, JSON.stringify(m)).toBe(false);
  });
});
