// A channel: one libp2p protocol carrying length-prefixed CBOR frames, with
// request/response (ids, timeouts), one-way messages, several streams per peer, awaited
// writes (back-pressure), inbound budgets, and junk handling that counts and disconnects
// a misbehaving peer instead of ever throwing into the process. Large messages travel as
// raw parts, one message per peer at a time, under a per-peer window of unacknowledged part
// bytes (the receiver acknowledges each part), so little bulk data is ever queued ahead of
// other channels' frames on the shared connection. The first part carries the message's
// length, so the receiver copies each part into place as it arrives instead of joining them
// all at the end (a stall of ~1 ms per MiB that coordination frames would wait behind).
import type { Libp2p, PeerId, Stream, Connection } from "@libp2p/interface";
import { lpStream, type LengthPrefixedStream } from "@libp2p/utils";
import { Uint8ArrayList } from "uint8arraylist";
import type { ZodType } from "zod";
import { decodeFrame, encodeFrame, Envelope } from "./codec.js";
import { TokenBucket } from "./limits.js";
import type { ChannelSpec } from "./specs.js";

function isPart(bytes: Uint8Array): boolean {
  return bytes.length > 0 && (bytes[0] === PART_FIRST || bytes[0] === PART_MORE || bytes[0] === PART_LAST);
}

function firstPartHeader(total: number): Uint8Array {
  const h = new Uint8Array(PART_FIRST_HEADER);
  h[0] = PART_FIRST;
  new DataView(h.buffer).setUint32(1, total);
  return h;
}

/** Data bytes in a part frame (what its acknowledgement counts). */
function partDataLength(frame: Uint8Array): number {
  return frame.length - (frame[0] === PART_FIRST ? PART_FIRST_HEADER : 1);
}

function isAck(bytes: Uint8Array): boolean {
  return bytes.length === 5 && bytes[0] === PART_ACK;
}

export class ChannelError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** The error came from the remote handler (its reply), not from our link to the peer. */
    readonly remote = false,
  ) {
    super(message);
    this.name = "ChannelError";
  }
}

export interface ChannelStats {
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  requests: number;
  timeouts: number;
  /** Rejected inbound frames by reason (oversize, undecodable, bad_envelope, bad_body, rate_limited, unknown_method). */
  rejected: Record<string, number>;
  /** Peers hung up on for sending junk. */
  disconnects: number;
  handlerErrors: number;
}

export interface RequestContext {
  peer: string;
}

type Handler = { schema: ZodType; fn: (body: unknown, ctx: RequestContext) => unknown | Promise<unknown> };

/** One stream's write side: a chain of writes (one writer at a time) and the bulk bytes it has sent that the peer has not acknowledged yet. */
interface Writer {
  stream: Stream;
  lp: LengthPrefixedStream;
  writeChain: Promise<void>;
  unacked: number;
  /** Our read side of the stream ended: no acknowledgements can arrive on it any more. */
  ended?: boolean;
}

interface OutStream extends Writer {
  inflight: number;
  closed: boolean;
}

/** Per peer: bulk (part) bytes sent and not yet acknowledged, across its streams. */
interface Credit {
  unacked: number;
  wake?: () => void;
}

// Part frames: a flag byte, then data. The first part of a message (PART_FIRST) has the whole
// message's length (u32 BE) between the flag and its data; the last one is PART_LAST.
const PART_MORE = 0x01;
const PART_LAST = 0x02;
/** Receiver -> sender on the same stream: "I have taken in n part bytes" (0x03, then n as u32 BE). */
const PART_ACK = 0x03;
const PART_FIRST = 0x04;
const PART_FIRST_HEADER = 5;
const PART_MORE_BYTE = Uint8Array.of(PART_MORE);
const PART_LAST_BYTE = Uint8Array.of(PART_LAST);
/** A message being reassembled on one stream: bytes copied in so far, in a buffer grown up to the announced length. */
interface Assembly {
  buf?: Uint8Array;
  total: number;
  off: number;
}
/** Largest buffer allocated for a message before its bytes arrive (a peer's announced length alone must not reserve 64 MiB). */
const ASSEMBLY_UPFRONT_MAX = 8 * 1024 * 1024;

/**
 * Per libp2p node (shared by its channels): priority-channel traffic in flight to each peer
 * (requests awaiting their reply, one-way messages being written). Bulk part senders with
 * yieldToPriority hold their next part while there is some, so the peer's event loop and ours
 * are free for it instead of busy with parts (bench/channels measures the difference).
 */
class PriorityGate {
  private readonly busy = new Map<string, number>();
  private readonly waiters = new Map<string, Set<() => void>>();

  begin(peer: string): () => void {
    this.busy.set(peer, (this.busy.get(peer) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.busy.get(peer) ?? 1) - 1;
      if (n > 0) return void this.busy.set(peer, n);
      this.busy.delete(peer);
      for (const w of this.waiters.get(peer) ?? []) w();
    };
  }

  /** Resolves once nothing is in flight to `peer`, or after maxMs (a slow handler must not stall bulk for long). */
  async idle(peer: string, maxMs: number): Promise<void> {
    if (!this.busy.has(peer)) return;
    let set = this.waiters.get(peer);
    if (!set) this.waiters.set(peer, (set = new Set()));
    const waiters = set;
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, maxMs);
      waiters.add(wake);
    });
    if (waiters.size === 0) this.waiters.delete(peer);
  }
}
const gates = new WeakMap<object, PriorityGate>();

/** Longest a part send waits for priority traffic to one peer (per part). */
const MAX_PRIORITY_HOLD_MS = 20;

/** Junk frames tolerated per peer (per minute) before we hang up on it. */
const STRIKES_BEFORE_DISCONNECT = 3;

export class Channel {
  readonly stats: ChannelStats = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, requests: 0, timeouts: 0, rejected: {}, disconnects: 0, handlerErrors: 0 };
  private readonly handlers = new Map<string, Handler>();
  private readonly listeners = new Map<string, Handler>();
  private readonly pools = new Map<string, OutStream[]>();
  private readonly opening = new Map<string, Promise<OutStream>>();
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; out: OutStream }>();
  private readonly budgets = new Map<string, { frames: TokenBucket; bytes: TokenBucket; strikes: number[] }>();
  /** Per peer, the tail of the queue of large (multi-part) messages: one at a time. */
  private readonly bulkLanes = new Map<string, Promise<void>>();
  private readonly credits = new Map<string, Credit>();
  private nextId = 1;
  private stopped = false;
  private readonly gate: PriorityGate;

  constructor(
    private readonly node: Libp2p,
    readonly spec: ChannelSpec,
  ) {
    let gate = gates.get(node);
    if (!gate) gates.set(node, (gate = new PriorityGate()));
    this.gate = gate;
  }

  async start(): Promise<void> {
    await this.node.handle(this.spec.protocol, (stream, connection) => this.onInbound(stream, connection), {
      maxInboundStreams: this.spec.maxInboundStreams,
      maxOutboundStreams: Math.max(this.spec.streamsPerPeer, 4),
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ChannelError("stopped", `${this.spec.name} channel stopped`));
    }
    this.pending.clear();
    for (const c of this.credits.values()) c.wake?.();
    for (const pool of this.pools.values()) for (const s of pool) s.stream.abort(new Error("channel stopped"));
    this.pools.clear();
    await this.node.unhandle(this.spec.protocol).catch(() => undefined);
  }

  /** Serve requests of `method`; bodies failing `schema` are answered with bad_request. */
  handle<B>(method: string, schema: ZodType<B>, fn: (body: B, ctx: RequestContext) => unknown | Promise<unknown>): void {
    this.handlers.set(method, { schema, fn: fn as Handler["fn"] });
  }

  /** Receive one-way messages of `method`. */
  on<B>(method: string, schema: ZodType<B>, fn: (body: B, ctx: RequestContext) => void | Promise<void>): void {
    this.listeners.set(method, { schema, fn: fn as Handler["fn"] });
  }

  async request<R = unknown>(peer: PeerId, method: string, body: unknown, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<R> {
    const id = this.nextId++;
    const frame = this.encode({ t: 1, id, m: method, b: body });
    const out = await this.streamTo(peer, options.signal);
    this.stats.requests++;
    out.inflight++;
    const reply = new Promise<R>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.spec.requestTimeoutMs;
      const timer = setTimeout(() => {
        if (this.pending.delete(id)) {
          out.inflight--;
          this.stats.timeouts++;
          reject(new ChannelError("timeout", `${this.spec.name} request '${method}' to ${peer.toString()} timed out after ${timeoutMs} ms`));
        }
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, out });
      options.signal?.addEventListener("abort", () => this.fail(id, new ChannelError("aborted", `${method} aborted`)), { once: true });
      this.write(out, frame, peer.toString()).catch((e) => this.fail(id, new ChannelError("connection", `${this.spec.name} write to ${peer.toString()} failed: ${(e as Error).message}`)));
    });
    if (this.spec.priority) {
      const done = this.gate.begin(peer.toString());
      reply.then(done, done);
    }
    return reply;
  }

  /** Fire-and-forget message (still awaits the write, so callers feel back-pressure). */
  async send(peer: PeerId, method: string, body: unknown, signal?: AbortSignal): Promise<void> {
    const out = await this.streamTo(peer, signal);
    const done = this.spec.priority ? this.gate.begin(peer.toString()) : undefined;
    try {
      await this.write(out, this.encode({ t: 4, m: method, b: body }), peer.toString());
    } finally {
      done?.();
    }
  }

  private get maxMessage(): number {
    return this.spec.maxMessageBytes ?? this.spec.maxFrameBytes;
  }

  private encode(env: Envelope): Uint8Array {
    const bytes = encodeFrame(env);
    if (bytes.length > this.maxMessage) {
      throw new ChannelError("too_large", `${this.spec.name} message of ${bytes.length} bytes exceeds the channel limit of ${this.maxMessage}; split the payload`);
    }
    return bytes;
  }

  private fail(id: number, err: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.out.inflight--;
    p.reject(err);
  }

  private async write(out: Writer, bytes: Uint8Array, peer: string): Promise<void> {
    // One writer at a time per stream; awaiting the write is the back-pressure.
    const next = out.writeChain.then(() => this.writeNow(out, bytes, peer));
    out.writeChain = next.catch(() => undefined);
    await next;
  }

  private async writeNow(out: Writer, bytes: Uint8Array, peer: string): Promise<void> {
    const chunk = this.spec.chunkBytes;
    if (!chunk || bytes.length <= chunk) {
      await out.lp.write(bytes);
      this.stats.framesOut++;
      this.stats.bytesOut += bytes.length;
      return;
    }
    // Large messages to one peer go one at a time: parallel bulk streams add no throughput
    // on one connection, only queueing in front of everything else (bench/channels).
    const prev = this.bulkLanes.get(peer) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.bulkLanes.set(peer, tail);
    await prev;
    try {
      await this.writeParts(out, bytes, chunk, peer);
    } finally {
      release();
      if (this.bulkLanes.get(peer) === tail) this.bulkLanes.delete(peer);
    }
  }

  private async writeParts(out: Writer, bytes: Uint8Array, chunk: number, peer: string): Promise<void> {
    // Raw part frames (a flag byte, the message length in the first one, then data): no CBOR
    // per part; a CBOR envelope (a map) never starts with these bytes.
    const window = this.spec.bulkWindowBytes ?? Infinity;
    // The first part gives up room for the length, so every part frame is the same size.
    for (let off = 0, size = chunk - (PART_FIRST_HEADER - 1); off < bytes.length; off += size, size = chunk) {
      const last = off + size >= bytes.length;
      const data = bytes.subarray(off, Math.min(bytes.length, off + size));
      // The header and a view of the message: no copy per part (50 MB of copies per 50 MB
      // sent were garbage for the collector, whose pauses stall coordination).
      const frame = new Uint8ArrayList(off === 0 ? firstPartHeader(bytes.length) : last ? PART_LAST_BYTE : PART_MORE_BYTE, data);
      if (this.spec.yieldToPriority) await this.gate.idle(peer, MAX_PRIORITY_HOLD_MS);
      if (!out.ended) {
        // Credit counts data bytes (not the flag byte), so a window of 2 parts holds 2 parts.
        await this.awaitCredit(out, peer, window, data.length);
        this.credit(peer).unacked += data.length;
        out.unacked += data.length;
      }
      await out.lp.write(frame);
      this.stats.framesOut++;
      this.stats.bytesOut += frame.byteLength;
    }
  }

  /** Part bytes sent to `peer` that it has not acknowledged yet (at most spec.bulkWindowBytes). */
  bulkUnacked(peer: string): number {
    return this.credits.get(peer)?.unacked ?? 0;
  }

  private credit(peer: string): Credit {
    let c = this.credits.get(peer);
    if (!c) {
      c = { unacked: 0 };
      this.credits.set(peer, c);
    }
    return c;
  }

  /**
   * Flow control for bulk parts: at most `window` part bytes sent to a peer and not yet
   * acknowledged by it. Bytes queued in the muxer, the socket and the peer's receive path
   * are bytes a small coordination frame on the same connection waits behind; this keeps
   * that queue short whatever the muxer's windows are.
   */
  private async awaitCredit(out: Writer, peer: string, window: number, need: number): Promise<void> {
    const credit = this.credit(peer);
    const fits = () => credit.unacked === 0 || credit.unacked + need <= window;
    if (fits()) return;
    const timeoutMs = this.spec.requestTimeoutMs;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        credit.wake = undefined;
        const err = new ChannelError("timeout", `${this.spec.name}: ${peer} acknowledged no data for ${timeoutMs} ms`);
        out.stream.abort(err);
        reject(err);
      }, timeoutMs);
      credit.wake = () => {
        if (!fits() && !this.stopped) return;
        clearTimeout(timer);
        credit.wake = undefined;
        resolve();
      };
    });
  }

  /** An acknowledgement arrived on a stream we wrote parts to; false if it acknowledges more than we sent there. */
  private onAck(out: Writer, frame: Uint8Array, peer: string): boolean {
    const n = new DataView(frame.buffer, frame.byteOffset + 1, 4).getUint32(0);
    if (n === 0 || n > out.unacked) return false;
    out.unacked -= n;
    this.release(peer, n);
    return true;
  }

  private release(peer: string, n: number): void {
    if (n === 0) return;
    const credit = this.credit(peer);
    credit.unacked = Math.max(0, credit.unacked - n);
    credit.wake?.();
  }

  /** A stream ended: bytes it still had unacknowledged will never be, so stop counting them. */
  private streamEnded(out: Writer, peer: string): void {
    out.ended = true;
    const n = out.unacked;
    out.unacked = 0;
    this.release(peer, n);
  }

  /** Tell the sender we took in a part (not through the write chain: it must never wait behind our own bulk writes). */
  private ack(lp: LengthPrefixedStream, n: number): void {
    if (n === 0) return;
    const frame = new Uint8Array(5);
    frame[0] = PART_ACK;
    new DataView(frame.buffer).setUint32(1, n);
    lp.write(frame).catch(() => undefined);
  }

  /**
   * Reassembles parts per stream, copying each into place; returns the whole envelope once the
   * last part arrives, undefined before, null for junk (counted).
   */
  private assemble(parts: Assembly, frame: Uint8Array, peer: string): Envelope | undefined | null {
    const flag = frame[0];
    if (flag === PART_FIRST) {
      if (parts.buf || frame.length < PART_FIRST_HEADER) return this.badPart(parts, "bad_envelope", peer);
      const total = new DataView(frame.buffer, frame.byteOffset + 1, 4).getUint32(0);
      if (total > this.maxMessage) return this.badPart(parts, "oversize", peer);
      parts.total = total;
      parts.off = 0;
      parts.buf = Buffer.allocUnsafeSlow(Math.min(total, ASSEMBLY_UPFRONT_MAX));
    } else if (!parts.buf) return this.badPart(parts, "bad_envelope", peer);
    const data = frame.subarray(flag === PART_FIRST ? PART_FIRST_HEADER : 1);
    const end = parts.off + data.length;
    if (end > parts.total) return this.badPart(parts, "bad_envelope", peer);
    if (end > parts.buf!.length) {
      const grown = Buffer.allocUnsafeSlow(Math.min(parts.total, Math.max(end, 2 * parts.buf!.length)));
      grown.set(parts.buf!.subarray(0, parts.off));
      parts.buf = grown;
    }
    parts.buf!.set(data, parts.off);
    parts.off = end;
    if (flag !== PART_LAST) return undefined;
    if (end !== parts.total) return this.badPart(parts, "bad_envelope", peer);
    const whole = parts.buf!;
    parts.buf = undefined;
    return this.decode(whole, peer) ?? null;
  }

  private badPart(parts: Assembly, reason: string, peer: string): null {
    parts.buf = undefined;
    this.reject(reason, peer);
    return null;
  }

  private async streamTo(peer: PeerId, signal?: AbortSignal): Promise<OutStream> {
    if (this.stopped) throw new ChannelError("stopped", `${this.spec.name} channel stopped`);
    const key = peer.toString();
    const pool = (this.pools.get(key) ?? []).filter((s) => !s.closed);
    this.pools.set(key, pool);
    const idle = pool.find((s) => s.inflight === 0);
    if (idle) return idle;
    if (pool.length < this.spec.streamsPerPeer) {
      let opening = this.opening.get(key);
      if (!opening) {
        opening = this.open(peer, signal).finally(() => this.opening.delete(key));
        this.opening.set(key, opening);
      }
      return opening;
    }
    return pool.reduce((a, b) => (b.inflight < a.inflight ? b : a));
  }

  private async open(peer: PeerId, signal?: AbortSignal): Promise<OutStream> {
    let stream: Stream;
    try {
      stream = await this.node.dialProtocol(peer, this.spec.protocol, { signal: signal ?? AbortSignal.timeout(this.spec.requestTimeoutMs) });
    } catch (e) {
      throw new ChannelError("connection", `cannot open ${this.spec.name} stream to ${peer.toString()}: ${(e as Error).message}`);
    }
    const out: OutStream = { stream, lp: lpStream(stream, { maxDataLength: this.spec.maxFrameBytes }), writeChain: Promise.resolve(), unacked: 0, inflight: 0, closed: false };
    const key = peer.toString();
    this.pools.set(key, [...(this.pools.get(key) ?? []), out]);
    void this.readResponses(out, key);
    return out;
  }

  private async readResponses(out: OutStream, peer: string): Promise<void> {
    const parts: Assembly = { total: 0, off: 0 };
    try {
      while (true) {
        const frame = await out.lp.read();
        const bytes = frame.subarray();
        this.stats.framesIn++;
        this.stats.bytesIn += bytes.length;
        let env: Envelope | undefined;
        if (this.spec.chunkBytes && isAck(bytes)) {
          if (!this.onAck(out, bytes, peer)) {
            this.reject("bad_ack", peer);
            out.stream.abort(new Error("bad acknowledgement"));
            break;
          }
          continue;
        }
        if (isPart(bytes)) {
          const whole = this.assemble(parts, bytes, peer);
          if (whole === null) break;
          this.ack(out.lp, partDataLength(bytes));
          env = whole;
        } else env = this.decode(bytes, peer);
        if (!env) continue;
        if (env.t === 2 || env.t === 3) {
          const p = this.pending.get(env.id);
          if (!p) continue; // late reply after a timeout
          this.pending.delete(env.id);
          clearTimeout(p.timer);
          out.inflight--;
          if (env.t === 2) p.resolve(env.b);
          else p.reject(new ChannelError(env.c, env.e, true));
        } else this.reject("bad_envelope", peer);
      }
    } catch (e) {
      this.readFailed(e, peer);
    } finally {
      out.closed = true;
      this.streamEnded(out, peer);
      for (const [id, p] of this.pending) if (p.out === out) this.fail(id, new ChannelError("connection", `${this.spec.name} stream to ${peer} closed`));
    }
  }

  private onInbound(stream: Stream, connection: Connection): void {
    const peer = connection.remotePeer.toString();
    const lp = lpStream(stream, { maxDataLength: this.spec.maxFrameBytes });
    const writer: Writer = { stream, lp, writeChain: Promise.resolve(), unacked: 0 };
    const budget = this.budget(peer);
    const parts: Assembly = { total: 0, off: 0 };
    void (async () => {
      try {
        while (true) {
          const frame = await lp.read();
          const bytes = frame.subarray();
          this.stats.framesIn++;
          this.stats.bytesIn += bytes.length;
          if (this.spec.chunkBytes && isAck(bytes)) {
            // Acknowledgements of our (bulk) replies on this stream: cheap, never rate-limited (a
            // dropped one would stall our sends), and junk ones count as strikes.
            if (!this.onAck(writer, bytes, peer)) {
              this.reject("bad_ack", peer);
              stream.abort(new Error("bad acknowledgement"));
              return;
            }
            continue;
          }
          if (!budget.frames.take(1) || !budget.bytes.take(bytes.length)) {
            this.reject("rate_limited", peer, false);
            continue;
          }
          let env: Envelope | undefined;
          if (isPart(bytes)) {
            if (!this.spec.chunkBytes) {
              this.reject("bad_envelope", peer);
              stream.abort(new Error("parts not accepted on this channel"));
              return;
            }
            const whole = this.assemble(parts, bytes, peer);
            if (whole !== null) this.ack(lp, partDataLength(bytes));
            if (whole === undefined) continue;
            env = whole ?? undefined;
          } else env = this.decode(bytes, peer);
          if (!env) {
            // Undecodable input: stop reading this stream; the peer may try again on a new one.
            stream.abort(new Error("junk frame"));
            return;
          }
          if (env.t === 1) void this.serve(env, peer, writer);
          else if (env.t === 4) void this.deliver(env, peer);
          else this.reject("bad_envelope", peer);
        }
      } catch (e) {
        this.readFailed(e, peer);
        stream.abort(e instanceof Error ? e : new Error(String(e)));
      } finally {
        this.streamEnded(writer, peer);
      }
    })();
  }

  private async serve(env: Extract<Envelope, { t: 1 }>, peer: string, writer: Writer): Promise<void> {
    const h = this.handlers.get(env.m);
    let reply: Envelope;
    if (!h) {
      this.reject("unknown_method", peer, false);
      reply = { t: 3, id: env.id, c: "unknown_method", e: `no '${env.m}' method on the ${this.spec.name} channel` };
    } else {
      const parsed = h.schema.safeParse(env.b);
      if (!parsed.success) {
        this.reject("bad_body", peer, false);
        const issue = parsed.error.issues[0];
        reply = { t: 3, id: env.id, c: "bad_request", e: `bad '${env.m}' request at ${issue.path.join(".") || "body"}: ${issue.message}` };
      } else {
        try {
          reply = { t: 2, id: env.id, b: await h.fn(parsed.data, { peer }) };
        } catch (e) {
          this.stats.handlerErrors++;
          const code = typeof (e as { code?: unknown }).code === "string" ? (e as { code: string }).code : "handler_error";
          reply = { t: 3, id: env.id, c: code.slice(0, 64), e: String((e as Error)?.message ?? e).slice(0, 4096) };
        }
      }
    }
    try {
      let bytes: Uint8Array;
      try {
        bytes = this.encode(reply);
      } catch (e) {
        bytes = this.encode({ t: 3, id: env.id, c: "too_large", e: (e as Error).message });
      }
      await this.write(writer, bytes, peer);
    } catch {
      // The requester went away; nothing to do.
    }
  }

  private async deliver(env: Extract<Envelope, { t: 4 }>, peer: string): Promise<void> {
    const h = this.listeners.get(env.m);
    if (!h) return this.reject("unknown_method", peer, false);
    const parsed = h.schema.safeParse(env.b);
    if (!parsed.success) return this.reject("bad_body", peer, false);
    try {
      await h.fn(parsed.data, { peer });
    } catch {
      this.stats.handlerErrors++;
    }
  }

  private decode(bytes: Uint8Array, peer: string): Envelope | undefined {
    let raw: unknown;
    try {
      raw = decodeFrame(bytes);
    } catch {
      this.reject("undecodable", peer);
      return undefined;
    }
    const env = Envelope.safeParse(raw);
    if (!env.success) {
      this.reject("bad_envelope", peer);
      return undefined;
    }
    return env.data;
  }

  private readFailed(e: unknown, peer: string): void {
    const name = (e as Error)?.name ?? "";
    if (name === "UnexpectedEOFError" || this.stopped) return;
    if (name === "InvalidDataLengthError" || /length/i.test((e as Error)?.message ?? "")) this.reject("oversize", peer);
  }

  private budget(peer: string) {
    let b = this.budgets.get(peer);
    if (!b) {
      b = { frames: new TokenBucket(this.spec.framesPerSecond), bytes: new TokenBucket(this.spec.bytesPerSecond), strikes: [] };
      this.budgets.set(peer, b);
    }
    return b;
  }

  /** Count a rejected frame; junk (strike = true) from the same peer three times a minute disconnects it. */
  private reject(reason: string, peer: string, strike = true): void {
    this.stats.rejected[reason] = (this.stats.rejected[reason] ?? 0) + 1;
    if (!strike || this.stopped) return;
    const b = this.budget(peer);
    const now = performance.now();
    b.strikes = b.strikes.filter((t) => now - t < 60_000);
    b.strikes.push(now);
    if (b.strikes.length >= STRIKES_BEFORE_DISCONNECT) {
      b.strikes = [];
      this.stats.disconnects++;
      const conns = this.node.getConnections().filter((c) => c.remotePeer.toString() === peer);
      for (const c of conns) void c.close().catch(() => c.abort(new Error("junk")));
    }
  }
}
