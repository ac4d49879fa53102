// A heartbeat load generator process: beats its share of the simulated nodes, each once a
// second, spread evenly over the second (shifted by `offset` of a beat's slot, so that several
// generators interleave), and answers its latencies. Issue 24 measures heartbeats "as the load
// generator sees them", with a generator process per 250 nodes where one process's own pauses
// (its event loop, its collections) would show up as the master's latency.
// usage: node heartbeat-generator.js MASTER_URL BEATS_JSON_FILE DURATION_S OFFSET (0 ≤ OFFSET < 1)
// It prints "heartbeat generator ready", starts on the parent's "go" (IPC), and sends
// { latencies: number[], failures: number[] } when done.
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { sleep } from "./lib.js";

/** A heartbeat's request, made once: the generator allocates little per request, so its own garbage collections stay out of the latencies. */
export interface Beat {
  path: string;
  headers: Record<string, string | number>;
  body: string;
}

function post(agent: Agent, url: URL, beat: Beat): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: url.hostname, port: url.port, path: beat.path, method: "POST", headers: beat.headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(beat.body);
  });
}

/** Beat each of `beats` once a second for `durationS`; the latencies seen and the failures (0: no answer). */
export async function beat(masterUrl: string, beats: Beat[], durationS: number, offset = 0): Promise<{ latencies: number[]; failures: number[] }> {
  const url = new URL(masterUrl);
  // Idle connections closed after 4 s, before the master's own 5 s, as the worker's client
  // does: a stall opens extra connections, and one reused as the master closes it would
  // fail a heartbeat ("socket hang up") that the master never saw.
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(4, Math.ceil(beats.length / 16)), timeout: 4000 });
  const latencies: number[] = [];
  const failures: number[] = [];
  const started = performance.now();
  const pending: Promise<void>[] = [];
  const slotMs = 1000 / beats.length;
  for (let tick = 0; performance.now() - started < durationS * 1000; tick++) {
    const node = beats[tick % beats.length];
    if (!node) break;
    const due = started + (tick + offset) * slotMs;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const sent = performance.now();
    pending.push(
      post(agent, url, node).then(
        (status) => {
          latencies.push(performance.now() - sent);
          if (status !== 200) failures.push(status);
        },
        // No answer at all (the connection failed): a failed heartbeat, counted, not a crash of the run.
        (error: unknown) => {
          failures.push(0);
          process.stderr.write(`bench: heartbeat without an answer: ${(error as Error).message}\n`);
        },
      ),
    );
  }
  await Promise.all(pending);
  agent.destroy();
  return { latencies, failures };
}

if (process.send) {
  const [masterUrl = "", file = "", durationS = "10", offset = "0"] = process.argv.slice(2);
  const beats = JSON.parse(readFileSync(file, "utf8")) as Beat[];
  process.once("message", () => {
    void beat(masterUrl, beats, Number(durationS), Number(offset)).then((result) => process.send?.(result));
  });
  console.log("heartbeat generator ready");
}
