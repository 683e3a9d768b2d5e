// The issues a configuration text is refused with, for tests of validation messages.
import assert from "node:assert/strict";
import { ConfigError, parseConfig, type ConfigIssue } from "../../src/config/load.js";

/** Fails the test unless `text` is refused with a ConfigError; its issues otherwise. */
export function configIssues(text: string): ConfigIssue[] {
  try {
    parseConfig(text, "test.yaml", {});
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.issues;
  }
  assert.fail("expected a ConfigError");
}
