import { runSchedule, propertyScheduleOptions } from "../src/consensus/sim_check.js";
const t0 = performance.now();
let bad = 0; const lat: number[] = []; let nul = 0; let ev = 0;
const N = Number(process.argv[2] ?? 200);
for (let s = 0; s < N; s++) {
  const r = runSchedule(propertyScheduleOptions(s));
  ev += r.events;
  if (r.violations.length) { bad++; if (bad < 4) console.log(r.seed, r.violations.slice(0, 3)); }
  if (r.leaderAfterHealMs === null) { nul++; if (nul < 5) console.log("noleader", s, r.maxTerm); } else lat.push(r.leaderAfterHealMs);
}
lat.sort((a, b) => a - b);
console.log({ N, bad, nul, p50: lat[lat.length >> 1], p99: lat[Math.floor(lat.length * 0.99)], max: lat[lat.length - 1], ms: performance.now() - t0, evPer: ev / N });
