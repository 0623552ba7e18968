// schroot's chroot namespaces (schroot(1), "Chroot Namespaces"): `chroot:`,
// `source:` and `session:`; a bare name is looked up in the action's default
// namespace (chroot, or session for -r/-e/--recover-session).
import { messages, SchrootUsageError } from './errors.js';

export type Namespace = 'chroot' | 'source' | 'session';

export interface ChrootRef {
  /** As given on the command line; -l with -c prints it as it is. */
  given: string;
  /** undefined: none was given. */
  namespace: Namespace | undefined;
  name: string;
}

const NAMESPACES: ReadonlySet<string> = new Set(['chroot', 'source', 'session']);

/**
 * Splits `ns:name` at the first colon. An unknown namespace is refused with
 * schroot's message; a leading colon is no namespace (schroot then finds no
 * chroot `:x`).
 */
export function parseChrootName(given: string): ChrootRef {
  const colon = given.indexOf(':');
  if (colon <= 0) return { given, namespace: undefined, name: given };
  const ns = given.slice(0, colon);
  if (!NAMESPACES.has(ns)) throw new SchrootUsageError(messages.noSuchNamespace(ns));
  return { given, namespace: ns as Namespace, name: given.slice(colon + 1) };
}
