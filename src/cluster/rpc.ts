// Calls between the cluster's primary and its workers over the IPC channel (process.send / worker.send):
// one request, one reply, matched by id. Messages carry `rg` so that prom-client's own cluster messages
// (metrics aggregation) on the same channel are left alone.
export type Handler = (args: any) => unknown;

interface CallMessage {
  rg: "call";
  id: number;
  method: string;
  args: unknown;
}

interface ReplyMessage {
  rg: "reply";
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

export class RpcTimeoutError extends Error {}

export class Rpc {
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (value: any) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();

  constructor(
    private readonly send: (message: CallMessage | ReplyMessage) => void,
    private readonly handlers: Record<string, Handler>,
  ) {}

  call<T>(method: string, args: unknown, timeoutMs: number): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new RpcTimeoutError(`${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve, reject, timer });
      try {
        this.send({ rg: "call", id, method, args });
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(err as Error);
      }
    });
  }

  /** Feeds one message from the channel; returns false for messages that are not ours. */
  receive(message: unknown): boolean {
    if (typeof message !== "object" || message === null) return false;
    const m = message as { rg?: string; id?: number; method?: string; args?: unknown; ok?: boolean; value?: unknown; error?: string };
    if (m.rg === "reply" && typeof m.id === "number") {
      const pending = this.#pending.get(m.id);
      if (!pending) return true;
      this.#pending.delete(m.id);
      clearTimeout(pending.timer);
      if (m.ok) pending.resolve(m.value);
      else pending.reject(new Error(m.error ?? "failed"));
      return true;
    }
    if (m.rg !== "call" || typeof m.id !== "number" || typeof m.method !== "string") return false;
    const id = m.id;
    const handler = this.handlers[m.method];
    const reply = (ok: boolean, value?: unknown, error?: string) => {
      try {
        this.send({ rg: "reply", id, ok, value, error });
      } catch {
        // The other side is gone: nobody is waiting for this answer any more.
      }
    };
    if (!handler) {
      reply(false, undefined, `unknown call ${m.method}`);
      return true;
    }
    Promise.resolve()
      .then(() => handler(m.args))
      .then(
        (value) => reply(true, value),
        (err: Error) => reply(false, undefined, err.message),
      );
    return true;
  }

  /** The other side went away: every call waiting for it fails now. */
  disconnected(): void {
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(new Error("the other process is gone"));
      this.#pending.delete(id);
    }
  }
}
