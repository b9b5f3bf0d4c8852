// The three channels. Each is its own libp2p protocol with its own frame limit, stream
// parallelism and inbound budget, so bulk inference traffic cannot starve coordination.

export type ChannelName = "inference" | "coordination" | "telemetry";

export interface ChannelSpec {
  name: ChannelName;
  protocol: string;
  /** Largest frame accepted or sent (bytes). */
  maxFrameBytes: number;
  /**
   * Messages larger than this are sent as parts of this size (one large message per peer at
   * a time), so one bulk message never holds the process (and other channels) for long.
   */
  chunkBytes?: number;
  /**
   * Flow control for parts: at most this many part bytes sent to one peer and not yet
   * acknowledged by its channel (the receiver acknowledges every part it takes in). Bulk bytes
   * queued anywhere between the two channels (muxer, socket buffers, the receiver's read path)
   * are bytes a coordination frame on the same TCP connection waits behind; this bounds them.
   * Default: no limit beyond the muxer's windows.
   */
  bulkWindowBytes?: number;
  /**
   * Priority channel: while one of its requests to a peer awaits the reply (and while one of its
   * one-way messages is being written), senders of parts on channels with yieldToPriority hold
   * their next part to that peer. Set on coordination.
   */
  priority?: boolean;
  /** Hold part sends to a peer while a priority channel has a request out to it (see priority). */
  yieldToPriority?: boolean;
  /** Largest whole message (after reassembling parts). Default maxFrameBytes. */
  maxMessageBytes?: number;
  /** Outbound streams opened per peer for parallel requests. */
  streamsPerPeer: number;
  /** Inbound streams a peer may hold open on this channel (per connection, libp2p-enforced). */
  maxInboundStreams: number;
  requestTimeoutMs: number;
  /** Inbound budget per peer (token buckets refilled per second). */
  framesPerSecond: number;
  bytesPerSecond: number;
}

const MiB = 1024 * 1024;

export const CHANNELS: Record<ChannelName, ChannelSpec> = {
  inference: {
    name: "inference",
    protocol: "/dspex/inference/1.0.0",
    maxFrameBytes: 4 * MiB,
    // A part, with its length prefix, flag byte and yamux header, fits one Noise message
    // (65,535 bytes with its 16-byte tag); 64 KiB parts were split in two, a second tiny
    // message per part (bench/channels: p99 ratio 3.5 vs 9.0, 78 vs 69 MB/s, same run).
    chunkBytes: 65_472,
    // One part unacknowledged per peer: a coordination frame waits behind at most one part
    // (bench/channels, same run: p99 ratio 2.5 vs 3.6 with two parts, 55 vs 81 MB/s).
    bulkWindowBytes: 65_472,
    // Parts wait while a coordination request to the same peer is out: the two event loops
    // then serve it instead of parts (bench/channels: lower loaded p50/p99, same MB/s).
    yieldToPriority: true,
    maxMessageBytes: 64 * MiB,
    streamsPerPeer: 4,
    maxInboundStreams: 16,
    requestTimeoutMs: 120_000,
    framesPerSecond: 20_000,
    bytesPerSecond: 512 * MiB,
  },
  coordination: {
    name: "coordination",
    protocol: "/dspex/coordination/1.0.0",
    priority: true,
    maxFrameBytes: 1 * MiB,
    streamsPerPeer: 2,
    maxInboundStreams: 8,
    requestTimeoutMs: 10_000,
    framesPerSecond: 10_000,
    bytesPerSecond: 64 * MiB,
  },
  telemetry: {
    name: "telemetry",
    protocol: "/dspex/telemetry/1.0.0",
    maxFrameBytes: 256 * 1024,
    streamsPerPeer: 1,
    maxInboundStreams: 4,
    requestTimeoutMs: 10_000,
    framesPerSecond: 2_000,
    bytesPerSecond: 16 * MiB,
  },
};
