// Runs one hook: own process group, stdout straight into hooks.log, stderr
// into a file of its own (then appended to hooks.log, its tail kept for the
// error), a timeout and an abort signal that both end in SIGTERM then
// SIGKILL to the group.
//
// stderr goes to an unlinked file rather than a pipe: a pipe costs every
// session start ~3 ms (Node sets up a stream for the first one, ~0.8 ms for
// each after), and a background child of the hook that keeps it open can
// hold nothing up: there is no end of a pipe to wait for.
// A hook that exits by itself settles the run; whatever it left in its group
// is a deliberate daemon of the hook and is not killed (hooks/README.md).
import type { ChildProcess } from 'node:child_process';
import { childProcess } from '../sys/index.js';
import { closeSync, constants, fstatSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { hookFailure, type HookFailure } from './errors.js';
import { killGroup, liveMembers, untilGroupDead } from './group.js';
import type { HookPhase } from './types.js';
import { setLongTimeout } from '../sys/index.js';

export interface OneHook {
  path: string;
  /** `<phase>.d/<name>` */
  hook: string;
  phase: HookPhase;
  env: Record<string, string>;
  logFd: number;
  /** Where the hook's stderr file is made (and unlinked at once): hooks.log's path. */
  logPath: string;
  timeoutMs: number;
  killGraceMs: number;
  signal: AbortSignal | undefined;
  /** Its arguments; default `[phase]`, as every hook gets. */
  args?: readonly string[];
  /** Where its stdout goes; default logFd. getent's goes to a scratchFile. */
  stdoutFd?: number;
}

/** How long to wait for SIGKILLed members to die (only a process in D state takes long). */
const DEATH_MS = 1000;
const TAIL_BYTES = 4096;
const TAIL_LINES = 5;

/** Last non-empty lines of what the hook wrote to stderr. */
class Tail {
  #chunks: Buffer[] = [];
  #bytes = 0;
  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    while (this.#bytes - this.#chunks[0]!.length >= TAIL_BYTES) this.#bytes -= this.#chunks.shift()!.length;
  }
  lines(): string[] {
    return Buffer.concat(this.#chunks)
      .toString('utf8')
      .split('\n')
      .map((l) => l.trimEnd())
      .filter((l) => l !== '')
      .slice(-TAIL_LINES);
  }
}

/** Resolves undefined when the hook exited 0, else with how it failed. Never rejects. */
export async function runOne(o: OneHook): Promise<HookFailure | undefined> {
  const tail = new Tail();
  const failure = (f: Partial<HookFailure>): HookFailure => hookFailure(o, { stderrTail: tail.lines(), ...f });

  const errFd = scratchFile(o.logPath);
  let child: ChildProcess;
  try {
    // detached: setsid(2), so the hook leads a new process group (and session) of its own.
    child = childProcess().spawn(o.path, o.args ?? [o.phase], { cwd: '/', env: o.env, stdio: ['ignore', o.stdoutFd ?? o.logFd, errFd], detached: true });
  } catch (e) {
    closeSync(errFd);
    return failure({ spawnError: e as Error });
  }
  // What the hook wrote to stderr: into hooks.log and the tail, in bounded
  // chunks (a hook may write a lot).
  const collect = () => {
    for (const chunk of chunks(errFd)) {
      tail.push(chunk);
      try {
        writeSync(o.logFd, chunk);
      } catch {
        // the log is best effort once the hook runs; the tail still reaches the error
      }
    }
  };

  let timedOut = false;
  let interrupted = false;
  let killTimer: NodeJS.Timeout | undefined;
  let killed: Promise<void> | undefined;
  let termAt = 0;
  const pgid = child.pid;
  const terminate = () => {
    if (killed !== undefined || pgid === undefined) return;
    killGroup(pgid, 'SIGTERM');
    termAt = Date.now();
    killed = new Promise((resolve) => {
      killTimer = setTimeout(() => {
        killTimer = undefined;
        killGroup(pgid, 'SIGKILL');
        resolve(untilGroupDead(pgid, DEATH_MS));
      }, o.killGraceMs);
    });
  };
  const cancelTimer = setLongTimeout(() => {
    timedOut = true;
    terminate();
  }, o.timeoutMs);
  const onAbort = () => {
    if (!timedOut) interrupted = true;
    terminate();
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });

  try {
    const ended = await new Promise<{ code: number | null; sig: NodeJS.Signals | null } | Error>((resolve) => {
      child.once('error', resolve);
      child.once('exit', (code, sig) => resolve({ code, sig }));
    });
    cancelTimer();
    o.signal?.removeEventListener('abort', onAbort);
    if (killed !== undefined && pgid !== undefined) {
      // The leader is gone; the rest of the group may still be dying of the
      // SIGTERM. Whoever is left when the grace ends gets SIGKILL.
      await untilGroupDead(pgid, termAt + o.killGraceMs - Date.now());
      if (liveMembers(pgid).length > 0) await killed;
      else clearTimeout(killTimer);
    }
    collect();
    if (ended instanceof Error) return failure({ spawnError: ended });
    if (timedOut || interrupted) return failure({ status: ended.code, signal: ended.sig, timedOut, interrupted });
    if (ended.code === 0) return undefined;
    return failure({ status: ended.code, signal: ended.sig });
  } finally {
    cancelTimer();
    clearTimeout(killTimer);
    closeSync(errFd);
  }
}

/**
 * A new file next to hooks.log, unlinked at once: only this fd (and the
 * hook, and whatever the hook leaves running) can reach it, and nothing is
 * left behind. A hook's stderr, or getent's output.
 */
let serial = 0;
export function scratchFile(logPath: string, what = 'stderr'): number {
  const path = `${logPath}.${what}-${process.pid}-${++serial}`;
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    unlinkSync(path);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/** The file from its start, in chunks of at most 64 KiB (the hook's own offset is its business). */
export function* chunks(fd: number): Generator<Buffer> {
  const size = fstatSync(fd).size;
  for (let at = 0; at < size; ) {
    const buf = Buffer.alloc(Math.min(65536, size - at));
    const n = readSync(fd, buf, 0, buf.length, at);
    if (n === 0) return;
    at += n;
    yield buf.subarray(0, n);
  }
}
