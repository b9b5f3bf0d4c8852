// Frame payloads: CBOR (cbor-x) of a small envelope, checked with zod on receipt.
import { Encoder } from "cbor-x";
import { z } from "zod";

// Plain maps/arrays only: no record extension, so any CBOR implementation can talk to us.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

/**
 * cbor-x writes results into a buffer it keeps and shares between calls, and grows it to 4x a
 * large message. Held by the long-lived encoder, a grown buffer outlives young-generation GCs
 * and is freed only by a full GC, whose pause stalls coordination (bench/channels: 12-14 full
 * GCs per 50 MB sent). So the encoder writes into one scratch buffer of ours, from its start
 * on every call, and each frame is copied out into a buffer of exactly its size that dies
 * young with the frame.
 */
const SCRATCH_MAX = 8 * 1024 * 1024;
const encoder = cbor as unknown as { useBuffer(buffer: Buffer): void };
let scratch: Buffer = Buffer.allocUnsafeSlow(64 * 1024);

export function encodeFrame(value: unknown): Uint8Array {
  encoder.useBuffer(scratch);
  const bytes: Buffer = cbor.encode(value);
  // cbor-x grew its buffer for this frame: keep the grown one (a Buffer: cbor-x writes strings
  // with Buffer methods) as the scratch, up to a cap.
  if (bytes.buffer !== scratch.buffer && bytes.buffer.byteLength <= SCRATCH_MAX) scratch = Buffer.from(bytes.buffer);
  // Copied out (Buffer#slice would be a view; Uint8Array#slice on a Buffer takes 4x as long).
  const frame = Buffer.allocUnsafeSlow(bytes.length);
  frame.set(bytes);
  return frame;
}

export function decodeFrame(bytes: Uint8Array): unknown {
  return cbor.decode(bytes);
}

/**
 * t: 1 request, 2 response (ok), 3 response (error), 4 one-way message. Large messages on
 * channels with chunkBytes travel as raw part frames (first byte 0x01 more / 0x02 last).
 */
export const Envelope = z.discriminatedUnion("t", [
  z.object({ t: z.literal(1), id: z.number().int().nonnegative(), m: z.string().min(1).max(64), b: z.unknown() }),
  z.object({ t: z.literal(2), id: z.number().int().nonnegative(), b: z.unknown() }),
  z.object({ t: z.literal(3), id: z.number().int().nonnegative(), c: z.string().max(64), e: z.string().max(4096) }),
  z.object({ t: z.literal(4), m: z.string().min(1).max(64), b: z.unknown() }),

]);
export type Envelope = z.infer<typeof Envelope>;
