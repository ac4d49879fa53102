// 5b. Flow control (API.md §5a): the claim rate of a node with 100,000 jobs of a paused
//     type, then of a type at its limit, at the head of the queue, against its rate
//     without them. Measured on the store itself, as the unrunnable-head figures are.
import { join } from "node:path";
import { tempDir, type Settings } from "../lib.js";
import { claimCost, fillStore, openStore } from "./store.js";

type Metrics = Record<string, number>;

export async function flowControl(settings: Settings): Promise<Metrics> {
  const rounds = settings.size === "full" ? 2000 : 100;
  const held = settings.size === "full" ? 100_000 : 5_000;
  const store = openStore(join(tempDir(), "flow.db"));
  await fillStore(store, 1000);
  const { node } = await store.nodes.register({ clientId: "w", name: "n", labels: [], capacity: 1_000_000, types: null, version: null, hardware: {} });
  await claimCost(store, node.id, 50); // warm up
  const before = await claimCost(store, node.id, rounds);
  // Live, so that without the pause every one of them would go first.
  await fillStore(store, held, { priority: "live", type: "paused-type" });
  await store.types.set({ type: "paused-type", paused: true, actor: null, since: new Date(0) });
  const paused = await claimCost(store, node.id, rounds);
  // The same jobs, resumed but limited to none running at once.
  await store.types.set({ type: "paused-type", paused: false, maxRunning: 0, actor: null, since: new Date(0) });
  const limited = await claimCost(store, node.id, rounds);
  const count = held.toLocaleString("en");
  const info = (await store.types.list({ since: new Date(0) })).find((type) => type.type === "paused-type");
  await store.close();
  if (info?.pending !== held || info.running !== 0) throw new Error(`the held type's jobs moved: ${JSON.stringify(info)}`);
  return {
    [`claim rate with ${count} jobs of a paused type at the head (share of normal)`]: before / paused,
    [`claim rate with ${count} jobs of a type at its limit at the head (share of normal)`]: before / limited,
  };
}
