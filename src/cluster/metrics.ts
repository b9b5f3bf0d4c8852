// Prometheus /metrics for one peer: channel bytes/frames/errors, probe RTTs, members.
import { createServer } from "node:http";
import { once } from "node:events";
import { Registry, Gauge, collectDefaultMetrics } from "prom-client";
import type { Peer } from "./peer.js";

export async function startMetricsServer(peer: Peer, port: number, host = "127.0.0.1"): Promise<{ url: string; close: () => Promise<void> }> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "dspex_process_" });
  const gauge = (name: string, help: string, labelNames: string[], collect: (g: Gauge) => Promise<void> | void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        this.reset();
        await collect(this);
      },
    });
  const stat = (key: "framesIn" | "framesOut" | "bytesIn" | "bytesOut" | "requests" | "timeouts" | "disconnects" | "handlerErrors") => (g: Gauge) => {
    for (const [name, ch] of Object.entries(peer.channels)) g.set({ channel: name }, ch.stats[key]);
  };
  gauge("dspex_channel_frames_in_total", "frames received per channel", ["channel"], stat("framesIn"));
  gauge("dspex_channel_frames_out_total", "frames sent per channel", ["channel"], stat("framesOut"));
  gauge("dspex_channel_bytes_in_total", "bytes received per channel", ["channel"], stat("bytesIn"));
  gauge("dspex_channel_bytes_out_total", "bytes sent per channel", ["channel"], stat("bytesOut"));
  gauge("dspex_channel_requests_total", "requests sent per channel", ["channel"], stat("requests"));
  gauge("dspex_channel_timeouts_total", "request timeouts per channel", ["channel"], stat("timeouts"));
  gauge("dspex_channel_junk_disconnects_total", "peers disconnected for junk per channel", ["channel"], stat("disconnects"));
  gauge("dspex_channel_rejected_frames_total", "inbound frames rejected, by reason", ["channel", "reason"], (g) => {
    for (const [name, ch] of Object.entries(peer.channels)) for (const [reason, n] of Object.entries(ch.stats.rejected)) g.set({ channel: name, reason }, n);
  });
  gauge("dspex_channel_rtt_ms", "last probe round-trip time per member and channel", ["member", "channel"], async (g) => {
    for (const m of await peer.members()) for (const [ch, h] of Object.entries(m.channels)) if (h?.rttMs !== undefined) g.set({ member: m.id, channel: ch }, h.rttMs);
  });
  gauge("dspex_members", "cluster members this peer is connected to", [], async (g) => g.set((await peer.members()).length));
  gauge("dspex_telemetry_rejected_total", "telemetry messages that failed validation", [], (g) => g.set(peer.rejectedTelemetry));

  const server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end("try /metrics\n");
      return;
    }
    registry
      .metrics()
      .then((text) => res.writeHead(200, { "content-type": registry.contentType }).end(text))
      .catch((e) => res.writeHead(500).end(String(e)));
  });
  server.listen(port, host);
  await once(server, "listening");
  const addr = server.address() as { port: number };
  return {
    url: `http://${host}:${addr.port}/metrics`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
