// Manifest writes. A PUT's body (a manifest is small: capped like registries cap it) is read whole and
// checked before any backend sees it, so a malformed one is the spec's 400 MANIFEST_INVALID rather than an
// old registry's 500; the bytes read are forwarded unchanged, so the digest the registry computes is the
// client's. Where the gateway keeps the referrers index (endpoints/referrers.ts), a PUT with a `subject`
// the backend accepted is added to the subject's index before the client hears `OCI-Subject`, and a DELETE
// by digest the backend accepted takes the manifest out of its subject's index.
import { createHash } from "node:crypto";
import { readBoundedBody } from "../proxy/bounded-body.js";
import type { ResponseHead } from "../proxy/round-trip.js";
import { referrerDescriptor } from "../referrers/index-document.js";
import { isValidDigest } from "../registry/digest.js";
import { MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, readManifest } from "../registry/manifest.js";
import type { Handler } from "./handler.js";
import { forward, proxy } from "./proxy.js";
import { keptReferrers } from "./referrers.js";

const ANY_MANIFEST = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(", ");

export const manifest: Handler = (ctx, state, request) => {
  if (ctx.method === "PUT") return putManifest(ctx, state, request);
  if (ctx.method === "DELETE" && isValidDigest(request.route.reference ?? "")) return deleteManifest(ctx, state, request);
  return proxy(ctx, state, request);
};

const putManifest: Handler = async (ctx, state, request) => {
  const body = await readBoundedBody(ctx.req, MAX_MANIFEST_BYTES);
  if (body === null) return request.refuse("manifestTooLarge", `the manifest is larger than ${MAX_MANIFEST_BYTES} bytes`);
  const reading = readManifest(body, ctx.req.headers["content-type"]);
  if (!reading.ok) return request.refuse("manifestInvalid", reading.message);
  const subject = reading.manifest.subject?.digest;
  const kept = subject === undefined ? null : await keptReferrers(ctx, state, request);
  if (!kept) return forward(ctx, state, request, { body });
  const { repository } = request.route;
  return forward(ctx, state, request, {
    body,
    beforeAnswer: async (head, edge) => {
      if (head.status !== 201) return;
      const digest = headerOf(head, "docker-content-digest") ?? `sha256:${createHash("sha256").update(body).digest("hex")}`;
      try {
        await kept.referrers.store.add(kept.backend, repository!, subject!, referrerDescriptor(reading.manifest, digest, body.length));
      } catch (err) {
        // Without OCI-Subject the client keeps the fallback tag itself, as the spec has it do.
        state.logger.warn({ site: request.site.name, repository, subject, err: (err as Error).message }, "a referrer could not be added to its subject's index");
        return;
      }
      edge.extraHeaders = [...(edge.extraHeaders ?? []), "OCI-Subject", subject!];
    },
  });
};

const deleteManifest: Handler = async (ctx, state, request) => {
  const kept = await keptReferrers(ctx, state, request);
  if (!kept) return proxy(ctx, state, request);
  const { repository, reference } = request.route;
  // Its subject is only known from the manifest itself, which is gone once the backend deleted it.
  const stored = await kept.backend.get(`/v2/${repository}/manifests/${reference}`, ANY_MANIFEST).catch(() => null);
  const reading = stored?.status === 200 ? readManifest(stored.body, stored.contentType) : null;
  const subject = reading?.ok ? reading.manifest.subject?.digest : undefined;
  if (subject === undefined) return proxy(ctx, state, request);
  return forward(ctx, state, request, {
    beforeAnswer: async (head) => {
      if (head.status !== 202) return;
      await kept.referrers.store.remove(kept.backend, repository!, subject, reference!).catch((err: Error) => {
        state.logger.warn({ site: request.site.name, repository, subject, err: err.message }, "a deleted referrer could not be taken out of its subject's index");
      });
    },
  });
};

function headerOf(head: ResponseHead, name: string): string | undefined {
  for (let i = 0; i < head.rawHeaders.length; i += 2) if (head.rawHeaders[i]!.toLowerCase() === name) return head.rawHeaders[i + 1];
  return undefined;
}
