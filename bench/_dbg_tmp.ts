import { runSchedule, propertyScheduleOptions } from "../src/consensus/sim_check.js";
const seed = Number(process.argv[2]);
const r = runSchedule({ ...propertyScheduleOptions(seed), trace: true });
console.log(JSON.stringify({ ...r, trace: undefined, plan: r.plan }, null, 0));
const from = Number(process.argv[3] ?? 0), to = Number(process.argv[4] ?? 1e9);
for (const l of r.trace!) { const t = parseFloat(l); if (t >= from && t <= to) console.log(l.slice(0, 400)); }
