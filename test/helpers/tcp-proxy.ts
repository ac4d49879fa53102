// A TCP proxy on 127.0.0.1 in front of the test PostgreSQL, to take the database away from a
// store and give it back (as a failover of the database looks to a master), or to hold new
// connections half made.
import net from "node:net";

export interface TcpProxy {
  /** The target URL with the proxy's host and port in it. */
  url: string;
  /** Connections open through the proxy now. */
  readonly open: number;
  /** Connections accepted but held, not yet passed on. */
  readonly held: number;
  /** Drop every connection and stop listening: new ones are refused. */
  cut(): Promise<void>;
  /** Listen again on the same port (`hold`: accept new connections but pass nothing on until release()). */
  restore(options?: { hold?: boolean }): Promise<void>;
  /** From now on hold new connections (accept them, pass nothing on) until release(); open ones go on. */
  holdNew(): void;
  /** Pass the held connections on to the server (and new ones from now on). */
  release(): void;
  /** Stop passing bytes either way on the open connections, closing none (a silent network partition). */
  freeze(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 5432);
  /** Every socket, both sides: what cut() destroys. */
  const sockets = new Set<net.Socket>();
  /** The accepted side of each connection still open. */
  const clients = new Set<net.Socket>();
  let waiting: net.Socket[] = [];
  let holding = false;
  /** Each forwarded connection's two sides. */
  const pairs = new Set<[net.Socket, net.Socket]>();

  const forward = (client: net.Socket) => {
    const upstream = net.connect(targetPort, target.hostname);
    sockets.add(upstream);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    upstream.on("close", () => {
      sockets.delete(upstream);
      pairs.delete(pair);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
    client.pipe(upstream).pipe(client);
  };
  const server = net.createServer((client) => {
    sockets.add(client);
    clients.add(client);
    client.on("close", () => {
      sockets.delete(client);
      clients.delete(client);
    });
    if (holding) waiting.push(client);
    else forward(client);
  });
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  const port = await listen(0);
  const proxied = new URL(targetUrl);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(port);
  const stop = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    waiting = [];
    await closed;
  };
  return {
    url: proxied.toString(),
    get open() {
      return clients.size;
    },
    get held() {
      return waiting.length;
    },
    cut: stop,
    async restore(options = {}) {
      holding = options.hold === true;
      await listen(port);
    },
    holdNew() {
      holding = true;
    },
    release() {
      holding = false;
      const held = waiting;
      waiting = [];
      for (const client of held) if (!client.destroyed) forward(client);
    },
    freeze() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    close: async () => {
      if (server.listening) await stop();
      else for (const socket of sockets) socket.destroy();
    },
  };
}
