// Requests the OCI distribution spec v1.1 tells a registry to refuse, refused by the gateway before they
// reach a registry that would do otherwise (distribution 2.8), in the pipeline's authorize stage:
//
//   tag delete         `DELETE /v2/<name>/manifests/<tag>`: distribution 2.8 cannot delete a tag and answers
//                      400 DIGEST_INVALID; the spec's answer is 405 UNSUPPORTED, so clients fall back to
//                      deleting by digest. A site whose registry deletes tags says `tagDelete: pass`.
//   digest parameters  the `digest` finishing an upload and the `mount` of a cross-repository mount must be
//                      digests (digest.ts): 400 DIGEST_INVALID. distribution 2.8 would ignore a malformed
//                      `mount` and start an upload instead, or fail the upload only after its body was sent.
//
// The parameters are read with the pipeline's one reading of a query or form (target.ts formValues), from
// the query and, for an upload start, from the urlencoded form the classify stage read: where the
// registry reads them (Go's r.FormValue).
import type { SiteConfig } from "../config/schema.js";
import { isDigestReference, isValidDigest } from "./digest.js";
import type { GatewayErrorKind } from "./errors.js";
import type { RegistryRoute } from "./routes.js";
import { formValues } from "./target.js";

export interface SpecRefusal {
  kind: Extract<GatewayErrorKind, "methodNotAllowed" | "digestInvalid" | "badRequest">;
  message: string;
  headers?: Record<string, string>;
}

/** Why the request is refused before any registry sees it; null: it may go on. */
export function specRefusal(
  site: Pick<SiteConfig, "tagDelete">,
  route: RegistryRoute,
  method: string,
  rawQuery: string,
  form: Buffer | undefined,
): SpecRefusal | null {
  if (route.kind === "manifest" && method === "DELETE" && !isDigestReference(route.reference ?? "") && site.tagDelete !== "pass") {
    return {
      kind: "methodNotAllowed",
      message: `this registry cannot delete a tag: delete the manifest by its digest (DELETE /v2/${route.repository}/manifests/<digest>)`,
      headers: { Allow: "GET, HEAD, PUT" },
    };
  }
  const parameter = digestParameter(route);
  return parameter ? digestRefusal(parameter, rawQuery, form) : null;
}

/** The query or form parameter that must hold a digest on this route, if any. */
function digestParameter(route: RegistryRoute): "digest" | "mount" | null {
  if (route.kind !== "upload") return null;
  if (route.uploadPhase === "finish") return "digest";
  return route.uploadPhase === "start" ? "mount" : null;
}

function digestRefusal(parameter: "digest" | "mount", rawQuery: string, form: Buffer | undefined): SpecRefusal | null {
  const fromQuery = formValues(rawQuery, parameter);
  const fromForm = form ? formValues(form.toString("latin1"), parameter) : [];
  if (fromQuery === null || fromForm === null) return { kind: "badRequest", message: "the query or form has an invalid percent-escape" };
  // An empty value is an absent one to the registry (Go's FormValue): no mount, or its own "digest missing".
  const bad = [...fromForm, ...fromQuery].find((value) => value !== "" && !isValidDigest(value));
  if (bad === undefined) return null;
  return {
    kind: "digestInvalid",
    message: `the ${parameter} parameter is not a valid digest (algorithm:encoded, e.g. sha256: and 64 lower-case hex digits): ${JSON.stringify(bad.slice(0, 200))}`,
  };
}
