// The gateway configuration every member of the fleet runs: two sites (a pool of three replicas, a group of
// a hosted registry and a mirror), htpasswd auth, rate limits, Redis. One file per gateway, differing only
// in its ports; a reload fault rewrites all three.

export const HUB = "hub.registry.test";
export const TEAM = "team.registry.test";
export const ACME_HOST = "acme.registry.test";

export const USERS = {
  admin: "Admin123",
  reader: "Reader123",
  /** Pushes the fault's own deliberately broken uploads, so their sessions never crowd out admin's. */
  uploader: "Uploader123",
  /** Added by the reload that changes users. */
  newcomer: "Newcomer123",
} as const;

export interface FleetConfigInput {
  httpsPort: number;
  adminPort: number;
  dataDir: string;
  redisUrl: string;
  htpasswdFile: string;
  replicaUrls: readonly string[];
  hostedUrl: string;
  mirrorUrl: string;
  /** Pulls per minute per user (the reload fault changes it). */
  pullRate: number;
  /** The ACME site's server (pebble): every gateway must answer its challenges, whichever placed the order. */
  acme: { directoryUrl: string; caFile: string };
}

const RULES = [
  "      rules:",
  "        - { who: [admin, uploader], repositories: [\"**\"], actions: [pull, push, delete, catalog] }",
  "        - { who: [reader, newcomer], repositories: [\"**\"], actions: [pull] }",
];

function authAndLimits(input: FleetConfigInput): string[] {
  return [
    "    auth:",
    "      type: htpasswd",
    `      htpasswd: ${JSON.stringify(input.htpasswdFile)}`,
    ...RULES,
    "    limits:",
    `      - { name: pulls, operations: [pull], rate: ${input.pullRate}, per: 1m, burst: ${input.pullRate}, key: user }`,
  ];
}

export function fleetConfig(input: FleetConfigInput): string {
  const lines = [
    `listen: 127.0.0.1:${input.httpsPort}`,
    `admin: { listen: "127.0.0.1:${input.adminPort}" }`,
    `dataDir: ${JSON.stringify(input.dataDir)}`,
    "workers: 2",
    // Every client reaches the gateways through one balancer address: the per-address caps would otherwise
    // count the whole fleet's traffic as one client.
    "limits: { maxConnections: 8192, maxConnectionsPerIp: 4096, downloadsPerClient: 1024, downloadsPerUser: 1024 }",
    "timeouts: { header: 5s, drain: 30s }",
    "log: { level: info, access: false }",
    `redis: { url: ${JSON.stringify(input.redisUrl)} }`,
    // Certificates, the CA and ACME state in Redis (sealed with GATEWAY_TLS_STORE_KEY): the fleet shares nothing else.
    "tls: { store: redis }",
    "sites:",
    "  - name: hub",
    `    hosts: [${HUB}]`,
    `    backends: [${input.replicaUrls.join(", ")}]`,
    "    health: { interval: 1s, timeout: 1s, unhealthyThreshold: 2, healthyThreshold: 1 }",
    ...authAndLimits(input),
    "  - name: team",
    `    hosts: [${TEAM}]`,
    "    group:",
    "      - name: hosted",
    `        backend: ${input.hostedUrl}`,
    "      - name: mirror",
    `        backend: ${input.mirrorUrl}`,
    '        repositories: ["library/**"]',
    "    pushTo: hosted",
    ...authAndLimits(input),
  ];
  if (input.acme) {
    lines.push(
      "  - name: acme",
      `    hosts: [${ACME_HOST}]`,
      `    backends: [${input.replicaUrls.join(", ")}]`,
      `    tls: { source: acme, directory: ${JSON.stringify(input.acme.directoryUrl)}, caFile: ${JSON.stringify(input.acme.caFile)}, challenge: tls-alpn-01, email: soak@registry.test }`,
      ...authAndLimits(input),
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Not YAML at all: a reload of it must be refused and the running configuration kept. */
export const BROKEN_CONFIG = "sites:\n  - name: hub\n    hosts: [hub.registry.test\n    backend: {{ not yaml\n";
