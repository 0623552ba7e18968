// A session's view put in place, shared by begin and recover: pre-mount
// hooks, the mount, post-mount hooks, each step registering its undo (a
// failed pre-mount hook runs post-unmount; a failed mount runs
// post-unmount; a failed post-mount hook runs pre-unmount, unmounts, then
// post-unmount).
import { runHooks, type HookPhase } from '../hooks/index.js';
import { unmountSettled } from '../union/index.js';
import { crashPoint } from '../sys/index.js';
import { profileHookOptions } from './profile.js';
import type { Session } from './session.js';
import type { Undo } from './undo.js';

export interface ViewOptions {
  /** Hooks see WARDEN_RECOVER=1. */
  recover: boolean;
  signal?: AbortSignal | undefined;
  /** Names the crash points: `<protocol>:pre-mount`, `:mounted`, `:post-mount`. */
  protocol: 'begin' | 'recover';
  /** Mounts the view (or, for a copy, makes it). */
  mount: () => Promise<void>;
}

/** Runs the hooks of `phase` for `session`, with the caller's signal. */
export function sessionHook(session: Session, phase: HookPhase, o: { recover: boolean; signal?: AbortSignal | undefined; keepGoing?: boolean }): Promise<unknown> {
  const { state, paths } = session;
  return runHooks({
    hooksDir: state.hooksDir,
    phase,
    vars: session.hookVars(o.recover),
    logPath: paths.hooksLog,
    timeoutMs: state.hookTimeoutMs,
    ...(o.keepGoing === undefined ? {} : { keepGoing: o.keepGoing }),
    signal: o.signal,
    ...profileHookOptions(state),
  });
}

/**
 * Stop hooks for an undo. They run without the caller's signal: a Ctrl-C
 * that cancelled the begin or recovery must not also cancel its clean-up.
 */
function stopHook(session: Session, phase: 'pre-unmount' | 'post-unmount', recover: boolean): () => Promise<void> {
  const { state, paths } = session;
  return async () => {
    await runHooks({ hooksDir: state.hooksDir, phase, vars: session.hookVars(recover), logPath: paths.hooksLog, timeoutMs: state.hookTimeoutMs, keepGoing: true });
  };
}

/**
 * pre-mount hooks -> mount -> post-mount hooks, each registering its undo
 * on `undo`. Returns the phases run.
 * Preconditions: the session's liveness and source SH held by this
 * process (liveness EX for a recovery), its dirs made.
 */
export async function mountViewLocked(session: Session, o: ViewOptions, undo: Undo): Promise<HookPhase[]> {
  const phases: HookPhase[] = [];
  const hook = async (phase: HookPhase) => {
    await sessionHook(session, phase, { recover: o.recover, signal: o.signal, ...(o.protocol === 'begin' ? { keepGoing: false } : {}) });
    phases.push(phase);
  };
  undo.push('post-unmount hooks', stopHook(session, 'post-unmount', o.recover));
  await hook('pre-mount');
  crashPoint(`${o.protocol}:pre-mount`);
  await o.mount();
  crashPoint(`${o.protocol}:mounted`);
  // Registered before post-mount runs: it also takes away whatever a failed
  // post-mount hook mounted before it failed (a .fstab hook leaves the
  // mounts it made; hooks/README.md), deepest first.
  undo.push('unmount', () => unmountSettled(session.paths.root));
  undo.push('pre-unmount hooks', stopHook(session, 'pre-unmount', o.recover));
  await hook('post-mount');
  crashPoint(`${o.protocol}:post-mount`);
  return phases;
}
