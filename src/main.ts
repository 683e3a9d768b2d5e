#!/usr/bin/env node
// The command line: serve | config check | cert ca.
import { Command } from "commander";
import { ConfigError, loadConfig } from "./config/load.js";
import type { GatewayConfig } from "./config/schema.js";
import { startGateway } from "./gateway.js";
import { createLogger } from "./observe/log.js";
import { loadOrCreateCa } from "./tls/selfsigned.js";

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
    const config = await configOrExit(file);
    const logger = createLogger(config.log);
    let gateway;
    try {
      gateway = await startGateway(config, logger);
    } catch (err) {
      logger.fatal({ err: (err as Error).message }, "gateway did not start");
      process.exit(1);
    }
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, "signal received");
      void gateway.shutdown(config.timeouts.drain).then(() => process.exit(0));
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });

const configCommand = program.command("config").description("work with configuration files");
configCommand
  .command("check")
  .description("validate a configuration file; exits non-zero listing every error as file:line key: why")
  .argument("<file>", "configuration file (YAML)")
  .action(async (file: string) => {
    const config = await configOrExit(file);
    console.log(`${file}: OK (${config.sites.length} site${config.sites.length === 1 ? "" : "s"})`);
  });

const certCommand = program.command("cert").description("certificates");
certCommand
  .command("ca")
  .description("print the PEM of the CA that signs generated certificates (created if it does not exist yet)")
  .requiredOption("-c, --config <file>", "configuration file (YAML)")
  .action(async ({ config: file }: { config: string }) => {
    const config = await configOrExit(file);
    const ca = await loadOrCreateCa(config.dataDir, config.tls.generated.caValidityDays);
    process.stdout.write(ca.certPem.endsWith("\n") ? ca.certPem : `${ca.certPem}\n`);
  });

async function configOrExit(file: string): Promise<GatewayConfig> {
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
