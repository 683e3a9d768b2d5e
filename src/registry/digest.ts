// The OCI image spec's digest grammar (descriptor.md, "Digests"), for the digests clients put in query
// parameters (an upload's `digest`, a mount's `mount`): a registry must answer a malformed one with 400
// DIGEST_INVALID, and distribution 2.8 instead fails the upload later or ignores the mount.
//
//   digest                ::= algorithm ":" encoded
//   algorithm             ::= algorithm-component (algorithm-separator algorithm-component)*
//   algorithm-component   ::= [a-z0-9]+
//   algorithm-separator   ::= [+._-]
//   encoded               ::= [a-zA-Z0-9=_-]+
//
// The registered algorithms narrow `encoded`: sha256 is 64 lower-case hex digits, sha512 128. Another
// algorithm of valid grammar is left to the registry, which knows which it supports.

const GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

const REGISTERED: Readonly<Record<string, RegExp>> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};

export function isValidDigest(value: string): boolean {
  if (!GRAMMAR.test(value)) return false;
  const colon = value.indexOf(":");
  const encoding = REGISTERED[value.slice(0, colon)];
  return encoding === undefined || encoding.test(value.slice(colon + 1));
}

/** A path reference that is not a digest names a tag (the manifest route takes either). */
export function isDigestReference(reference: string): boolean {
  return reference.includes(":");
}
