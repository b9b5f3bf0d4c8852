// SWIM-style failure detector (Das, Gupta, Motivala 2002) over the manager's neighbours.
//
// The shell calls `tick()` every `probeMs`. A tick pings one neighbour (round-robin over
// a shuffled order, so each is probed at least once per |neighbours| ticks). No ack by the
// next tick: `indirect` other neighbours are asked to ping it (`fd.ping_req`; they dial it
// if they must) and relay its ack. Still no ack by the tick after: the peer becomes
// locally suspect; suspects are pinged directly every tick and any message from them
// clears the suspicion. A suspect not heard from for `suspicionMs` is declared dead: the
// shell hangs up and the manager removes it (full-membership managers also gossip the
// death). Probing piggybacks on the shell's single tick timer (no timer per probe: at
// 10,000 nodes every event counts).
//
// Connection loss (the `disconnected` event) removes a peer without waiting for this;
// the detector covers silent failures: half-open connections, a hung process, a link that
// drops everything.
//
// Bound for a silent failure of a neighbour, from the crash to "declared dead":
//   <= (|neighbours| - 1) * probeMs  (wait for its turn)
//    + 2 * probeMs                    (direct, then indirect probe unanswered)
//    + suspicionMs rounded up to probeMs.

import type { Shell } from "./shell.js";
import { sample } from "./shell.js";
import type { DetectorMessage, DetectorOptions, NodeId } from "./types.js";

const DEFAULTS: Required<DetectorOptions> = {
  probeMs: 1000,
  indirect: 3,
  suspicionMs: 3000,
  disabled: false,
};

export class Detector {
  readonly opts: Required<DetectorOptions>;
  private order: NodeId[] = [];
  private idx = 0;
  private seq = 0;
  private probe: { target: NodeId; seq: number; acked: boolean; indirect: boolean } | undefined;
  private readonly suspects = new Map<NodeId, number>();
  private readonly relays = new Map<number, { requester: NodeId; seq: number; at: number }>();
  /** Peers declared dead so far (for tests and metrics). */
  failures = 0;

  constructor(
    private readonly sh: Shell,
    opts: DetectorOptions = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  isSuspect(peer: NodeId): boolean {
    return this.suspects.has(peer);
  }

  /** Any message from `peer` is evidence of life. */
  heard(peer: NodeId): void {
    if (this.suspects.size > 0) this.suspects.delete(peer);
  }

  forget(peer: NodeId): void {
    this.suspects.delete(peer);
    if (this.probe !== undefined && this.probe.target === peer) this.probe = undefined;
  }

  onMessage(from: NodeId, msg: DetectorMessage): void {
    const sh = this.sh;
    switch (msg.type) {
      case "fd.ping":
        sh.sendIfConnected(from, { type: "fd.ack", seq: msg.seq });
        return;
      case "fd.ack": {
        const p = this.probe;
        if (p !== undefined && p.seq === msg.seq) {
          p.acked = true;
          this.suspects.delete(p.target);
          return;
        }
        const r = this.relays.get(msg.seq);
        if (r !== undefined) {
          this.relays.delete(msg.seq);
          sh.sendIfConnected(r.requester, { type: "fd.ack", seq: r.seq });
        }
        return;
      }
      case "fd.ping_req": {
        if (msg.target === sh.id) {
          sh.sendIfConnected(from, { type: "fd.ack", seq: msg.seq });
          return;
        }
        const local = ++this.seq;
        this.relays.set(local, { requester: from, seq: msg.seq, at: sh.now });
        sh.send(msg.target, { type: "fd.ping", seq: local });
        return;
      }
    }
  }

  /** Called by the shell every `probeMs`. */
  tick(): void {
    if (this.opts.disabled) return;
    const sh = this.sh;
    const now = sh.now;
    // 1. The outstanding probe: unanswered once -> ask others (ping-req); twice -> suspect.
    const p = this.probe;
    if (p !== undefined && !p.acked && sh.isOpen(p.target)) {
      if (!p.indirect) {
        p.indirect = true;
        const helpers = sh.neighborList().filter((n) => n !== p.target);
        for (const h of sample(sh.ctx.rng, helpers, this.opts.indirect)) sh.sendIfConnected(h, { type: "fd.ping_req", target: p.target, seq: p.seq });
      } else {
        if (!this.suspects.has(p.target)) this.suspects.set(p.target, now);
        this.probe = undefined;
      }
    } else this.probe = undefined;
    // 2. Suspects: declare dead after suspicionMs, else ping again.
    for (const [peer, since] of this.suspects) {
      if (!sh.isOpen(peer)) {
        this.suspects.delete(peer);
      } else if (now - since >= this.opts.suspicionMs) {
        this.suspects.delete(peer);
        this.failures++;
        sh.peerFailed(peer);
      } else {
        sh.sendIfConnected(peer, { type: "fd.ping", seq: ++this.seq });
      }
    }
    // 3. Next probe target, round-robin.
    if (this.probe === undefined) {
      if (this.idx >= this.order.length) {
        this.order = sh.ctx.rng.shuffle(sh.neighborList());
        this.idx = 0;
      }
      while (this.idx < this.order.length) {
        const target = this.order[this.idx++]!;
        if (!sh.isOpen(target) || !sh.isNeighbor(target)) continue;
        const seq = ++this.seq;
        this.probe = { target, seq, acked: false, indirect: false };
        sh.sendIfConnected(target, { type: "fd.ping", seq });
        break;
      }
    }
    // 4. Forget stale relays.
    if (this.relays.size > 0) for (const [k, r] of this.relays) if (now - r.at > 5000) this.relays.delete(k);
  }
}
