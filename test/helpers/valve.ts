// A TCP relay on 127.0.0.1 that a test can start shut: while shut it accepts connections but holds them,
// unanswered and not yet connected onwards; opening it relays each held connection to the target. This
// pins a protocol exchange at a known step however slow the machine is (an ACME server's validation
// request, held, keeps an order pending until the test has done what it must do mid-order).
import net from "node:net";

export interface Valve {
  readonly port: number;
  /** Connections held now, waiting for the valve to open. */
  waiting(): number;
  open(): void;
  close(): Promise<void>;
}

export async function startValve(targetPort: number, { open = true } = {}): Promise<Valve> {
  let isOpen = open;
  const waiting: net.Socket[] = [];
  const sockets = new Set<net.Socket>();
  const relay = (client: net.Socket) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(upstream).add(client);
    upstream.on("close", () => sockets.delete(upstream));
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.pipe(upstream).pipe(client);
    client.resume();
  };
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    if (isOpen) relay(client);
    else {
      client.on("error", () => {});
      waiting.push(client);
    }
  });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    waiting: () => waiting.filter((client) => !client.destroyed).length,
    open() {
      isOpen = true;
      for (const client of waiting.splice(0)) if (!client.destroyed) relay(client);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
