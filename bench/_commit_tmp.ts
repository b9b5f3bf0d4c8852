import { runSchedule, propertyScheduleOptions } from "../src/consensus/sim_check.js";
const s = Number(process.argv[2]);
const r = runSchedule({ ...propertyScheduleOptions(s), boundMs: 1000 });
console.log(s, r.leaderAfterHealMs, JSON.stringify(r.final.filter(f=>f.role==="leader")));
