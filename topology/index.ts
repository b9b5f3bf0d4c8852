// Public API of the overlay layer. See README.md in this folder.
export * from "./types.js";
export { TopologyNode, SwitchableTopology, type NodeStats } from "./node.js";
export { createManager, TOPOLOGY_NAMES } from "./managers.js";
export { HyParView, hyparviewConfig, type HyParViewConfig } from "./hyparview.js";
export { FullMesh, ClientServer } from "./full-mesh.js";
export { StaticTopology } from "./static.js";
export { Plumtree, type BroadcastStats } from "./plumtree.js";
export { Detector } from "./detector.js";
