// With auth off (development), only this machine may talk to the master (API.md §8): it
// listens on a loopback address only, and answers only requests addressed to `localhost` or
// a loopback address, so a web page whose name an attacker re-points at 127.0.0.1 (DNS
// rebinding) cannot drive the API from the developer's browser.
import { BlockList, isIP } from "node:net";

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");
LOOPBACK.addSubnet("::ffff:127.0.0.0", 104, "ipv6");

/** `localhost` (any case, with or without its final dot) or a literal loopback address; never a name that merely resolves to one. */
export function isLoopbackName(name: string): boolean {
  const bare = name.startsWith("[") && name.endsWith("]") ? name.slice(1, -1) : name;
  if (/^localhost\.?$/i.test(bare)) return true;
  const family = isIP(bare);
  return family !== 0 && LOOPBACK.check(bare, family === 6 ? "ipv6" : "ipv4");
}

/** Whether a `Host` header (`name`, `name:port`, `[v6]` or `[v6]:port`) names this machine by loopback. */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  if (host === undefined) return false;
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(host);
  return match !== null && isLoopbackName(match[1] ?? "");
}
