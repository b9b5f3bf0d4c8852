// The part of sodium-native (libsodium bindings) DSPEx uses: XSalsa20 as a stream cipher.
declare module "sodium-native" {
  const sodium: {
    crypto_stream_PRIMITIVE: string;
    crypto_stream_xor_STATEBYTES: number;
    crypto_stream_xor_init(state: Uint8Array, nonce: Uint8Array, key: Uint8Array): void;
    crypto_stream_xor_update(state: Uint8Array, out: Uint8Array, input: Uint8Array): void;
  };
  export default sodium;
}
