// Command-line options of `npm run soak -- …`.
import { parseArgs } from "node:util";

export interface SoakOptions {
  minutes: number;
  /** Directory for result.json and the plots; the report goes next to it (`<out>.md`). */
  out: string;
  /** The docker CLI's own traffic (a private dockerd): on by default from 10 minutes on. */
  docker: boolean;
  /** Kill every replica of the pool for 3 s during the quiet phase without recording a fault window. */
  unattributedFault: boolean;
  /** Small GETs per second of the load generator. */
  rate: number;
}

export const USAGE = "npm run soak -- [--minutes N] [--out DIR] [--docker | --no-docker] [--rate N] [--unattributed-fault]";

export function parseSoakOptions(argv: readonly string[]): SoakOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      minutes: { type: "string", default: "20" },
      out: { type: "string", default: "docs/reliability" },
      docker: { type: "boolean" },
      "no-docker": { type: "boolean" },
      rate: { type: "string", default: "20" },
      "unattributed-fault": { type: "boolean", default: false },
    },
    strict: true,
  });
  const minutes = Number(values.minutes);
  const rate = Number(values.rate);
  if (!(minutes > 0)) throw new Error(`--minutes wants a positive number, got ${values.minutes}`);
  if (!(rate > 0)) throw new Error(`--rate wants a positive number, got ${values.rate}`);
  return {
    minutes,
    out: values.out!.replace(/\/+$/, ""),
    docker: values["no-docker"] ? false : (values.docker ?? minutes >= 10),
    unattributedFault: values["unattributed-fault"]!,
    rate,
  };
}
