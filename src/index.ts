// Public entry point: `import { Predict, configure } from "dspex"`.
import "./util/polyfill.js";
export * from "./engine/index.js";
