// `dspex peer`, `dspex keygen`, `dspex status`.
import { Command } from "commander";
import { Peer } from "../../cluster/peer.js";
import { loadOrCreateIdentity, readClusterKey, writeClusterKey } from "../../cluster/keys.js";
import { jsonLogger, silentLogger } from "../../cluster/log.js";
import { queryStatus, withClusterClient } from "../../cluster/client.js";
import { startMetricsServer } from "../../cluster/metrics.js";
import { getRegistry } from "../../engine/registry.js";
import { providerSchema } from "../../consensus/cluster_state.js";
import { CliError } from "../errors.js";
import { addLMOptions, intFlag, type LMFlags } from "../lm_options.js";
import { startConsensus } from "../peer/consensus.js";
import { startJobs } from "../peer/jobs.js";
import { startTopology } from "../peer/topology.js";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";

interface PeerFlags extends LMFlags {
  voters?: string;
  dataDir?: string;
  voterCount?: string;
  listen: string[];
  bootstrap?: string[];
  keyFile?: string;
  identity?: string;
  capacity: string;
  metricsPort?: string;
  metricsHost: string;
  plugin?: string[];
  log?: string;
  json?: boolean;
  insecure?: boolean;
  topology?: string;
  topologyOptions?: string;
}

export function peerCommand(): Command {
  const cmd = new Command("peer")
    .description("run a cluster peer (with --lm it runs job tasks on that LM)")
    .option("--listen <multiaddr...>", "addresses to listen on", ["/ip4/127.0.0.1/tcp/0"])
    .option("--bootstrap <multiaddr...>", "join the cluster through these peers (full address with /p2p/<id>)")
    .option("--key-file <file>", "the cluster's pre-shared key (dspex keygen); required unless --insecure")
    .option("--insecure", "run without a cluster key (anyone who can reach the port may join)")
    .option("--identity <file>", "peer identity key file (created on first start), so the peer id survives restarts")
    .option("--capacity <n>", "tasks this peer runs at once", "8")
    .option("--metrics-port <port>", "serve Prometheus /metrics on this port")
    .option("--metrics-host <host>", "address for /metrics", "127.0.0.1")
    .option("--plugin <file...>", "local ES module(s) registering modules/metrics/tools")
    .option("--log <level>", "JSON logs on stderr at this level (debug, info, warn, error)")
    .option("--voters <ids|auto>", "run consensus: comma-separated peer ids of the founding Raft voters (3 or 5; other peers join as learners), or 'auto' (the peer without --bootstrap founds, learners are promoted up to --voter-count)")
    .option("--data-dir <dir>", "where this peer keeps its Raft log (required for voters; a learner without it keeps state in memory and is never promoted)")
    .option("--voter-count <n>", "voters the leader keeps, replacing voters silent for 10 s by live learners (default: the --voters list's length; 3 with auto)")
    .option("--topology <name>", "overlay this peer runs: full-mesh (default), hyparview, client-server, static")
    .option("--topology-options <json>", `overlay options as JSON, e.g. '{"expectedSize": 1000}' (hyparview) or '{"role": "client"}' (client-server)`)
    .option("--json", "print the listening event as one JSON line");
  addLMOptions(cmd);
  return cmd.action(async (flags: PeerFlags) => {
      if (!flags.keyFile && !flags.insecure) {
        throw new CliError("a peer needs the cluster key: pass --key-file cluster.key (create it once with 'dspex keygen --out cluster.key'), or --insecure for a throwaway local test");
      }
      if (flags.log && !["debug", "info", "warn", "error"].includes(flags.log)) throw new CliError(`--log must be debug, info, warn or error, got '${flags.log}'`);
      const capacity = intFlag("capacity", flags.capacity, 8, 1);
      const metricsPort = flags.metricsPort === undefined ? undefined : intFlag("metrics-port", flags.metricsPort, 0, 0);
      for (const p of flags.plugin ?? []) await getRegistry().loadPlugin(p);
      const clusterKey = flags.keyFile ? await readClusterKey(flags.keyFile) : undefined;
      const identity = flags.identity ? await loadOrCreateIdentity(flags.identity) : undefined;
      const logger = flags.log ? jsonLogger({ component: "peer" }, flags.log as "info") : silentLogger;
      const peer = await Peer.start({ listen: flags.listen, bootstrap: flags.bootstrap, clusterKey, identity, capacity, logger });
      const raft = startConsensus(peer, flags, logger);
      await startTopology(peer, flags, raft, logger);
      const jobs = await startJobs(peer, raft, flags, capacity, logger);
      const metrics = metricsPort !== undefined ? await startMetricsServer(peer, metricsPort, flags.metricsHost) : undefined;
      if (flags.json) {
        process.stdout.write(JSON.stringify({ event: "listening", peer: peer.id, addrs: peer.multiaddrs(), ...(metrics ? { metrics: metrics.url } : {}) }) + "\n");
      } else {
        process.stdout.write(`peer ${peer.id}\n${peer.multiaddrs().map((a) => `  listening on ${a}`).join("\n")}\n`);
        if (metrics) process.stdout.write(`  metrics on ${metrics.url}\n`);
      }
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      await metrics?.close();
      await jobs.close();
      raft?.stop();
      await peer.stop();
      if (flags.json) process.stdout.write(JSON.stringify({ event: "stopped", peer: peer.id }) + "\n");
    });
}

export function keygenCommand(): Command {
  return new Command("keygen")
    .description("write a new cluster key (copy the file to every peer)")
    .requiredOption("--out <file>", "where to write the key")
    .action(async (flags: { out: string }) => {
      await writeClusterKey(flags.out);
      process.stdout.write(`wrote cluster key to ${flags.out}; give it to every peer with --key-file\n`);
    });
}

export function statusCommand(): Command {
  return new Command("status")
    .description("show a cluster's members, channel health, topology, leader and load")
    .requiredOption("--join <multiaddr>", "any peer's full address")
    .option("--key-file <file>", "the cluster key")
    .option("--json", "machine-readable output")
    .action(async (flags: { join: string; keyFile?: string; json?: boolean }) => {
      const key = flags.keyFile ? await readClusterKey(flags.keyFile) : undefined;
      const s = await queryStatus(flags.join, key);
      if (flags.json) {
        process.stdout.write(JSON.stringify(s) + "\n");
        return;
      }
      const raft = s.term !== undefined ? `  term ${s.term} (${s.role})` : "";
      const committed = s.committedTopology ? ` (committed: ${s.committedTopology})` : "";
      process.stdout.write(`peer ${s.peer}  topology ${s.topology}${committed}  leader ${s.leader ?? "none"}${raft}  members ${s.members.length + 1}\n`);
      for (const [p, l] of Object.entries(s.lmLimits ?? {})) process.stdout.write(`  LM budget ${p}: ${[l.rpm !== undefined ? `${l.rpm} requests/min` : "", l.tpm !== undefined ? `${l.tpm} tokens/min` : ""].filter(Boolean).join(", ")} (cluster-wide)\n`);
      for (const m of s.members) {
        const ch = Object.entries(m.channels)
          .map(([n, h]) => `${n} ${h?.ok ? `${h.rttMs} ms` : `DOWN (${h?.lastError ?? "?"})`}`)
          .join(", ");
        const load = m.telemetry ? `load ${m.telemetry.inflight}/${m.telemetry.capacity}, telemetry ${m.telemetry.ageMs} ms old` : "no telemetry yet";
        process.stdout.write(`  ${m.id}  ${ch || "not probed yet"}; ${load}\n`);
      }
    });
}

export function identityCommand(): Command {
  return new Command("identity")
    .description("create (if needed) a peer identity file and print its peer id")
    .requiredOption("--file <file>", "identity key file")
    .action(async (flags: { file: string }) => {
      const key = await loadOrCreateIdentity(flags.file);
      process.stdout.write(peerIdFromPrivateKey(key).toString() + "\n");
    });
}

export function limitsCommand(): Command {
  const cmd = new Command("limits").description("cluster-wide LM budgets per provider, committed through Raft and shared by all jobs");
  cmd
    .command("set")
    .description("set a provider's requests and/or tokens per minute across the whole cluster (e.g. limits set openai --rpm 500)")
    .argument("<provider>", "provider as in model strings: openai, anthropic, gemini, ...")
    .requiredOption("--join <multiaddr>", "any peer running consensus (--voters)")
    .option("--key-file <file>", "the cluster key")
    .option("--rpm <n>", "requests (task starts) per minute")
    .option("--tpm <n>", "tokens per minute")
    .action(async (provider: string, flags: { join: string; keyFile?: string; rpm?: string; tpm?: string }) => {
      const rpm = flags.rpm !== undefined ? positive("--rpm", flags.rpm) : undefined;
      const tpm = flags.tpm !== undefined ? positive("--tpm", flags.tpm) : undefined;
      if (rpm === undefined && tpm === undefined) throw new CliError("give --rpm and/or --tpm (to remove a budget: dspex limits clear <provider>)");
      await proposeLimit(provider, flags, { ...(rpm !== undefined ? { rpm } : {}), ...(tpm !== undefined ? { tpm } : {}) });
      process.stdout.write(`committed: ${provider} ${[rpm !== undefined ? `${rpm} requests/min` : "", tpm !== undefined ? `${tpm} tokens/min` : ""].filter(Boolean).join(", ")} across the cluster\n`);
    });
  cmd
    .command("clear")
    .description("remove a provider's cluster-wide budget")
    .argument("<provider>", "provider")
    .requiredOption("--join <multiaddr>", "any peer running consensus (--voters)")
    .option("--key-file <file>", "the cluster key")
    .action(async (provider: string, flags: { join: string; keyFile?: string }) => {
      await proposeLimit(provider, flags, {});
      process.stdout.write(`committed: no cluster-wide budget for ${provider}\n`);
    });
  return cmd;
}

function positive(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`${flag} must be a positive number, got '${v}'`);
  return n;
}

async function proposeLimit(provider: string, flags: { join: string; keyFile?: string }, limit: { rpm?: number; tpm?: number }): Promise<void> {
  const p = providerSchema.safeParse(provider);
  if (!p.success) throw new CliError(`'${provider}' is not ${p.error.issues[0]?.message ?? "a provider name"}`);
  const key = flags.keyFile ? await readClusterKey(flags.keyFile) : undefined;
  const reply = (await withClusterClient(flags.join, key, (ask) => ask("propose", { type: "setLmLimit", provider, ...limit }))) as { result?: { ok: boolean; message?: string } };
  if (reply.result && !reply.result.ok) throw new CliError(`the cluster refused the limit: ${reply.result.message ?? "unknown reason"}`);
}

export function topologyCommand(): Command {
  const cmd = new Command("topology").description("cluster-wide topology, committed through Raft");
  cmd
    .command("set")
    .description("switch every peer to a topology (full-mesh, hyparview, client-server, static)")
    .argument("<name>", "topology name")
    .requiredOption("--join <multiaddr>", "any peer running consensus (--voters)")
    .option("--key-file <file>", "the cluster key")
    .option("--options <json>", "topology options as JSON", "{}")
    .action(async (name: string, flags: { join: string; keyFile?: string; options: string }) => {
      if (!["full-mesh", "hyparview", "client-server", "static"].includes(name)) {
        throw new CliError(`unknown topology '${name}'; valid: full-mesh, hyparview, client-server, static`);
      }
      let options: unknown;
      try {
        options = JSON.parse(flags.options);
      } catch (e) {
        throw new CliError(`--options is not valid JSON (${(e as Error).message})`);
      }
      const key = flags.keyFile ? await readClusterKey(flags.keyFile) : undefined;
      await withClusterClient(flags.join, key, (ask) => ask("propose", { type: "setTopology", name, options }));
      process.stdout.write(`proposed topology ${name}; 'dspex status' shows it once committed\n`);
    });
  return cmd;
}
