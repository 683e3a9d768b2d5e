#!/usr/bin/env node
// The command line: serve | reload | config check | cert ca|status|rotate | token cert | passwd.
// First: the heap settings apply before anything else is loaded.
import { tuneForTransfers } from "./memory-tuning.js";
import cluster from "node:cluster";
import { Command, InvalidArgumentError } from "commander";
import { DEFAULT_BCRYPT_COST, passwordFromStdin, promptHidden, setPassword, userNameProblem } from "./auth/passwd.js";
import type { GatewayConfig } from "./config/schema.js";
import { registerCertCommands, registerReloadCommand } from "./cli/gateway-commands.js";
import { workerCount } from "./cluster/cpus.js";

// Each command loads what it uses when it runs (dynamic imports): a cluster worker, which runs this file
// too, loads only the request path (cluster/worker.js); the primary, not the request path; `serve`,
// neither certificate generation nor token keys unless the configuration needs them.

const EXIT_CONFIG = 2;

const program = new Command()
  .name("registry-gateway")
  .description("TLS-terminating gateway in front of container registries")
  .showHelpAfterError();

program
  .command("serve")
  .description("run the gateway")
  .requiredOption("-c, --config <file>", "configuration file (YAML)")
  .action(async ({ config: file }: { config: string }) => {
    // A cluster worker is started with the primary's arguments; its configuration comes from the primary.
    if (cluster.isWorker) {
      tuneForTransfers();
      return (await import("./cluster/worker.js")).runWorker();
    }
    const config = await configOrExit(file);
    const { createLogger } = await import("./observe/log.js");
    const logger = createLogger(config.log);
    const workers = workerCount(config.workers);
    // The primary of a cluster runs no request path: the heap settings are for the processes that do.
    if (workers === 1) tuneForTransfers();
    const [{ ControlPlane }, { loadConfig }, dataPlane] = await Promise.all([
      import("./control/control-plane.js"),
      import("./config/load.js"),
      workers > 1
        ? import("./cluster/fleet-data-plane.js").then(({ FleetDataPlane }) => new FleetDataPlane(workers, logger))
        : import("./control/local-data-plane.js").then(({ LocalDataPlane }) => new LocalDataPlane(logger)),
    ]);
    const control = new ControlPlane(dataPlane, logger, { configSource: () => loadConfig(file) });
    try {
      await control.start(config);
    } catch (err) {
      logger.fatal({ err: (err as Error).message }, "gateway did not start");
      process.exit(1);
    }
    control.handleSignals();
  });

registerReloadCommand(program, configOrExit);

const configCommand = program.command("config").description("work with configuration files");
configCommand
  .command("check")
  .description("validate a configuration file; exits non-zero listing every error as file:line key: why")
  .argument("<file>", "configuration file (YAML)")
  .action(async (file: string) => {
    const config = await configOrExit(file);
    const { authFileProblems } = await import("./auth/build.js");
    const problems = await authFileProblems(config);
    if (problems.length > 0) {
      console.error(problems.join("\n"));
      process.exit(EXIT_CONFIG);
    }
    console.log(`${file}: OK (${config.sites.length} site${config.sites.length === 1 ? "" : "s"})`);
  });

const certCommand = program.command("cert").description("certificates");
certCommand
  .command("ca")
  .description("print the PEM of the CA that signs generated certificates (created if it does not exist yet)")
  .requiredOption("-c, --config <file>", "configuration file (YAML)")
  .action(async ({ config: file }: { config: string }) => {
    const config = await configOrExit(file);
    const { loadOrCreateCa } = await import("./tls/selfsigned.js");
    const ca = await loadOrCreateCa(config.dataDir, config.tls.generated.caValidityDays);
    process.stdout.write(ca.certPem.endsWith("\n") ? ca.certPem : `${ca.certPem}\n`);
  });
registerCertCommands(certCommand, configOrExit);

const tokenCommand = program.command("token").description("token authentication");
tokenCommand
  .command("cert")
  .description(
    "print the PEM certificate of the token signing key (created if it does not exist yet): the rootcertbundle " +
      "of a backend registry running `auth: token` behind a site with `backendAuth: {type: token}`",
  )
  .requiredOption("-c, --config <file>", "configuration file (YAML)")
  .action(async ({ config: file }: { config: string }) => {
    const config = await configOrExit(file);
    try {
      const { loadSigningKey } = await import("./auth/signing-key.js");
      process.stdout.write((await loadSigningKey(config)).certPem);
    } catch (err) {
      console.error((err as Error).message);
      process.exit(1);
    }
  });

program
  .command("passwd")
  .description("add a user to an htpasswd file, or change their password (bcrypt); creates the file (mode 0600) if needed")
  .argument("<file>", "htpasswd file")
  .argument("<user>", "user name")
  .option("--password-stdin", "read the password from standard input instead of prompting")
  .option("--cost <n>", "bcrypt cost, 4 to 17", parseCost, DEFAULT_BCRYPT_COST)
  .action(async (file: string, user: string, options: { passwordStdin?: boolean; cost: number }) => {
    const problem = userNameProblem(user);
    if (problem) fail(problem);
    let password: string;
    try {
      if (options.passwordStdin) password = await passwordFromStdin(process.stdin);
      else if (!process.stdin.isTTY) fail("standard input is not a terminal: pass the password with --password-stdin");
      else {
        password = await promptHidden("Password: ", process.stdin, process.stderr);
        if ((await promptHidden("Repeat password: ", process.stdin, process.stderr)) !== password) fail("the passwords do not match");
      }
      const added = await setPassword(file, user, password!, options.cost);
      console.error(`${added ? "Adding" : "Updating"} password for user ${user} in ${file}`);
    } catch (err) {
      fail((err as Error).message);
    }
  });

function parseCost(value: string): number {
  const cost = Number(value);
  if (!Number.isInteger(cost) || cost < 4 || cost > 17) throw new InvalidArgumentError("expected a whole number from 4 to 17");
  return cost;
}

function fail(message: string): never {
  console.error(`registry-gateway passwd: ${message}`);
  process.exit(1);
}

async function configOrExit(file: string): Promise<GatewayConfig> {
  const { ConfigError, loadConfig } = await import("./config/load.js");
  try {
    return await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(EXIT_CONFIG);
    }
    console.error(`${file}: ${(err as Error).message}`);
    process.exit(EXIT_CONFIG);
  }
}

await program.parseAsync(process.argv);
