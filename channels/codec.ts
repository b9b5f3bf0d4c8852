// Frame payloads: CBOR (cbor-x) of a small envelope, checked with zod on receipt.
import { Encoder } from "cbor-x";
import { z } from "zod";

// Plain maps/arrays only: no record extension, so any CBOR implementation can talk to us.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

export function encodeFrame(value: unknown): Uint8Array {
  return cbor.encode(value);
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
