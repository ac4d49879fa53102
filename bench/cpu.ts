// CPU time a process has spent (user + system, every thread), from /proc (Linux): what a
// process costs per job carries over to bigger machines, where a throughput on this 2-core
// VM, shared by the load, the master and the workers, does not.
import { readFileSync } from "node:fs";

/** Clock ticks a second in /proc's figures (USER_HZ: 100 on every Linux this runs on). */
const TICKS_PER_S = 100;

/** Seconds of CPU the process `pid` has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the line, so 11 and 12 after the name.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
}

/** CPU seconds of several processes, read together. */
export function cpuOf(pids: number[]): number[] {
  return pids.map((pid) => cpuSeconds(pid));
}
