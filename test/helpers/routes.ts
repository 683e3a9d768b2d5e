// Routes for unit tests, read the way the pipeline reads them: canonical target, `from` from the query.
import assert from "node:assert/strict";
import { classify, type RegistryRoute } from "../../src/registry/routes.js";
import { checkTarget, formValues } from "../../src/registry/target.js";

/** The route of `method url`; fails the test when the gateway would refuse the request. */
export function routeOf(method: string, url: string): RegistryRoute {
  const target = checkTarget(url);
  assert.ok(target.ok, `${url} is not a canonical target`);
  const classified = classify(method, target.path, method === "POST" ? (formValues(target.rawQuery, "from") ?? []) : []);
  assert.ok(classified.ok, `${method} ${url} does not classify: ${JSON.stringify(classified)}`);
  return classified.route;
}
