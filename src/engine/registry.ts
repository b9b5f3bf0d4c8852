// Names -> code, so programs travel as data: module kinds, metrics, tools, reward functions
// and custom types are looked up here; plugins (local ES modules) register more.
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { DspexError } from "./errors.js";
import type { LM } from "./lm/types.js";
import type { Module } from "./modules/module.js";
import type { Prediction, Example, Record_ } from "./example.js";
import type { TypeExpr } from "./signature/types.js";

export type ModuleFactory = (config: Record<string, unknown>, registry: Registry) => Module;

/** A metric scores a prediction against an example; a trace is given while bootstrapping. */
export type Metric = (example: Example, prediction: Prediction, trace?: unknown) => number | boolean | Promise<number | boolean>;

/** BestOfN/Refine reward: inputs and prediction to a number. */
export type RewardFn = (inputs: Record_, prediction: Prediction) => number | Promise<number>;

export interface ToolDef {
  name: string;
  desc?: string;
  /** JSON schema per argument, as DSPy's Tool.args. */
  args: Record<string, Record<string, unknown>>;
  fn: (args: Record<string, unknown>) => unknown | Promise<unknown>;
}

export type LMFactory = (state: Record<string, unknown>) => LM | undefined;

class Table<V> {
  private readonly items = new Map<string, V>();
  constructor(private readonly what: string, private readonly hint: string) {}
  set(name: string, value: V, replace = false): void {
    if (typeof name !== "string" || name.trim() === "") throw new DspexError("registry_conflict", `a ${this.what} needs a non-empty name`);
    if (this.items.has(name) && !replace) {
      throw new DspexError("registry_conflict", `a ${this.what} named '${name}' is already registered; pick another name or pass { replace: true }`);
    }
    this.items.set(name, value);
  }
  get(name: string): V {
    const v = this.items.get(name);
    if (v === undefined) {
      throw new DspexError("registry_unknown", `unknown ${this.what} '${name}'; known: ${this.names().join(", ") || "none"}. ${this.hint}`);
    }
    return v;
  }
  has(name: string): boolean {
    return this.items.has(name);
  }
  names(): string[] {
    return [...this.items.keys()].sort();
  }
}

export class Registry {
  readonly modules = new Table<ModuleFactory>("module kind", "Plugins add kinds with registerModule().");
  readonly metrics = new Table<Metric>("metric", "Plugins add metrics with registerMetric().");
  readonly tools = new Table<ToolDef>("tool", "Plugins add tools with registerTool().");
  readonly rewards = new Table<RewardFn>("reward function", "Plugins add reward functions with registerReward().");
  readonly types = new Table<TypeExpr>("type", "Plugins add types with registerType().");
  private lmFactory: LMFactory | undefined;
  private readonly loadedPlugins = new Set<string>();

  setLMFactory(f: LMFactory): void {
    this.lmFactory = f;
  }

  lmFromState(state: Record<string, unknown>): LM | undefined {
    return this.lmFactory?.(state);
  }

  /** Build a module from its spec (kind + config). */
  buildModule(spec: { kind: string; config?: Record<string, unknown> }): Module {
    if (!spec || typeof spec.kind !== "string") {
      throw new DspexError("program_state", "a module spec needs a 'kind' string (e.g. \"Predict\", \"ChainOfThought\")");
    }
    return this.modules.get(spec.kind)(spec.config ?? {}, this);
  }

  /**
   * Load a plugin: a local ES module exporting `register(registry)` (or a default function).
   * Only local paths are accepted; code never arrives over the network.
   */
  async loadPlugin(path: string): Promise<void> {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path) && !path.startsWith("file://")) {
      throw new DspexError("plugin", `plugin '${path}' is not a local file; plugins must be local ES module paths`);
    }
    const url = path.startsWith("file://") ? path : pathToFileURL(resolve(path)).href;
    if (this.loadedPlugins.has(url)) return;
    let mod: Record<string, unknown>;
    try {
      mod = (await import(url)) as Record<string, unknown>;
    } catch (e) {
      throw new DspexError("plugin", `could not load plugin '${path}': ${(e as Error).message}`, { cause: e });
    }
    const register = (typeof mod.register === "function" ? mod.register : mod.default) as ((r: Registry) => unknown) | undefined;
    if (typeof register !== "function") {
      throw new DspexError("plugin", `plugin '${path}' must export a function 'register(registry)' (or a default export function)`);
    }
    try {
      await register(this);
    } catch (e) {
      throw new DspexError("plugin", `plugin '${path}' failed while registering: ${(e as Error).message}`, { cause: e });
    }
    this.loadedPlugins.add(url);
  }
}

let registry: Registry | undefined;
const initializers: ((r: Registry) => void)[] = [];

/** Built-in modules/metrics register themselves lazily through this hook (no import cycles). */
export function onRegistryInit(init: (r: Registry) => void): void {
  initializers.push(init);
  if (registry) init(registry);
}

export function getRegistry(): Registry {
  if (!registry) {
    registry = new Registry();
    for (const init of initializers) init(registry);
  }
  return registry;
}

export function registerModule(kind: string, factory: ModuleFactory, options: { replace?: boolean } = {}): void {
  getRegistry().modules.set(kind, factory, options.replace);
}
export function registerMetric(name: string, metric: Metric, options: { replace?: boolean } = {}): void {
  getRegistry().metrics.set(name, metric, options.replace);
}
export function registerTool(tool: ToolDef, options: { replace?: boolean } = {}): void {
  getRegistry().tools.set(tool.name, tool, options.replace);
}
export function registerReward(name: string, fn: RewardFn, options: { replace?: boolean } = {}): void {
  getRegistry().rewards.set(name, fn, options.replace);
}
export function registerType(name: string, type: TypeExpr, options: { replace?: boolean } = {}): void {
  getRegistry().types.set(name, type, options.replace);
}
