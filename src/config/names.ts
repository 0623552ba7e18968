// Which chroot names and aliases warden accepts.
//
// schroot forbids a leading '.', and ':', ',' or '/' anywhere (schroot.conf(5),
// "Chroot Names"). warden is stricter: a name becomes a path component
// (`.manage/<chroot>.lock`) and the first part of a default session id, whose
// syntax is `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` (DESIGN.md), so names use that
// same alphabet and length. Every real-world schroot name we know of
// (`sid-amd64-sbuild`, `bookworm_arm64`, `jammy.i386`) fits.

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const MAX_NAME_LENGTH = 64;

/** The group that holds warden's global settings; it can never name a chroot. */
export const GLOBAL_GROUP = 'warden';

/** Why `name` is not a valid chroot name or alias, or undefined when it is. */
export function nameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} characters`;
  if (!NAME.test(name)) {
    return 'must start with a letter or digit and contain only letters, digits, ".", "_" and "-"';
  }
  return undefined;
}

// A host name in registrations (`<host>@<id>`) and messages: RFC 1123
// labels joined by dots, at most 64 characters so that a registration's
// name stays far below NAME_MAX. '@' can occur in neither part.
const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
export const MAX_HOST_LENGTH = 64;

/** Why `name` is not usable as this host's name in a build farm, or undefined when it is. */
export function hostProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.length > MAX_HOST_LENGTH) return `is longer than ${MAX_HOST_LENGTH} characters`;
  if (!HOST.test(name)) return 'must be a host name: letters, digits and "-", in dot-separated labels that start and end with a letter or digit';
  return undefined;
}
