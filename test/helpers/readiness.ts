// GET /readyz on the admin listener: the data plane's view of every backend, probed now.
export interface ReadyBackend {
  pool: string;
  backend: string;
  reachable: boolean;
  healthy: boolean;
  outstanding: number;
}

export interface ReadyAnswer {
  status: number;
  body: { status: string; listening: boolean; backends: ReadyBackend[] };
}

export async function readyz(adminPort: number): Promise<ReadyAnswer> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
  return { status: res.status, body: (await res.json()) as ReadyAnswer["body"] };
}
