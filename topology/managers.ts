// Manager factory by name.

import { ClientServer, FullMesh } from "./full-mesh.js";
import { HyParView } from "./hyparview.js";
import { StaticTopology } from "./static.js";
import type { ClientServerOptions, FullMeshOptions, HyParViewOptions, ManagerOptions, OverlayManager, StaticOptions, TopologyName } from "./types.js";

export const TOPOLOGY_NAMES: readonly TopologyName[] = ["full-mesh", "hyparview", "client-server", "static"];

export function createManager(name: TopologyName, options?: ManagerOptions): OverlayManager {
  switch (name) {
    case "full-mesh":
      return new FullMesh(options as FullMeshOptions | undefined);
    case "hyparview":
      return new HyParView(options as HyParViewOptions | undefined);
    case "client-server": {
      const o = options as ClientServerOptions | undefined;
      if (o === undefined || (o.role !== "server" && o.role !== "client")) throw new TypeError('client-server needs options.role "server" or "client"');
      return new ClientServer(o);
    }
    case "static":
      return new StaticTopology((options as StaticOptions | undefined) ?? { peers: [] });
    default:
      throw new TypeError(`unknown topology ${JSON.stringify(name)}; expected one of ${TOPOLOGY_NAMES.join(", ")}`);
  }
}
