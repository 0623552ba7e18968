// The supervisor's answers: the JSON requests (hello, status, begin, end)
// and the sessions side of the relay's calls (the BrokerHost that
// broker.ts serves them through).
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { accessToSource, authorize, type Credentials } from '../config/index.js';
import {
  beginSession,
  endSession,
  enterSource,
  newId,
  openSession,
  recoverSession,
  SessionBusyError,
  SessionExistsError,
  SessionNotFoundError,
  validateId,
  type WaitInfo,
} from '../sessions/index.js';
import { endedStale, readopted } from './adoption.js';
import type { BrokerHost, RelayedCall } from './broker.js';
import { SessionAccessError, SupervisorStoppingError } from './errors.js';
import { assertSessionOwner } from './owner.js';
import { PROTOCOL_VERSION, type Request } from './protocol.js';
import { LAG_RESOLUTION_MS, type SupervisorState } from './state.js';

export async function handleRequest(s: SupervisorState, req: Request, who: Credentials, signal: AbortSignal, hungUp: () => boolean, onWait: (info: WaitInfo) => void): Promise<Record<string, unknown>> {
  switch (req.op) {
    case 'hello':
      return { pid: process.pid, stateDir: s.stateDir, protocol: PROTOCOL_VERSION };
    case 'status':
      return status(s);
    case 'begin':
      return begin(s, req, who, signal, hungUp, onWait);
    case 'end':
      return end(s, req, who, signal, onWait);
  }
}

/** What the supervisor holds and how it is doing; the event-loop delay is since the previous status. */
function status(s: SupervisorState): Record<string, unknown> {
  // The monitor records each of its periods whole: the delay is what lies beyond the period.
  const beyond = (ns: number) => round(Math.max(0, ns / 1e6 - LAG_RESOLUTION_MS));
  const lag = { maxMs: beyond(s.lag.max), p99Ms: beyond(s.lag.percentile(99)), meanMs: beyond(s.lag.mean) };
  s.lag.reset();
  return {
    pid: process.pid,
    stateDir: s.stateDir,
    held: [...s.held.keys()].sort(),
    inFlight: s.inFlight.size - 1,
    relayed: s.acceptor?.relayed ?? 0,
    clients: s.acceptor?.clients.size ?? 0,
    nonRootClients: s.acceptor?.nonRoot ?? 0,
    limits: s.limits,
    fds: fdCounts(),
    rssBytes: process.memoryUsage.rss(),
    eventLoopDelay: lag,
  };
}

async function begin(s: SupervisorState, req: Extract<Request, { op: 'begin' }>, who: Credentials, signal: AbortSignal, hungUp: () => boolean, onWait: (info: WaitInfo) => void): Promise<Record<string, unknown>> {
  const spec = s.o.resolveChroot(req.chroot);
  authorize(spec.chroot, who, 'session');
  const session = await beginSession({
    stateDir: s.stateDir,
    chroot: spec.chroot,
    id: req.id,
    hooksDir: spec.hooksDir,
    hookTimeoutMs: spec.hookTimeoutMs,
    owner: { uid: who.uid, gid: who.gid },
    signal,
    timeout: req.timeout === undefined ? undefined : req.timeout * 1000,
    wait: req.wait,
    onWait,
  });
  // The client went away (or we are stopping) while the session was set
  // up past its last wait: nobody learns its id, so it is rolled back.
  // The kernel is asked too: a client that closed while the last hook
  // finished may not have been read yet, and its 'close' would come only
  // after the session is held for nobody.
  if (signal.aborted || hungUp()) {
    s.log(`began ${session.id} for a client that went away; ending it`);
    await endSession(session, { offThread: true }).catch((e) => {
      session.release();
      s.log(`could not end ${session.id} (left stale): ${(e as Error).message}`);
    });
    throw signal.reason;
  }
  s.held.set(session.id, session);
  s.log(`began ${session.id} (chroot ${spec.chroot.name}) for uid ${who.uid}${who.pid ? ` pid ${who.pid}` : ''}`);
  return { id: session.id, chroot: spec.chroot.name, root: session.paths.root };
}

async function end(s: SupervisorState, req: Extract<Request, { op: 'end' }>, who: Credentials, signal: AbortSignal, onWait: (info: WaitInfo) => void): Promise<Record<string, unknown>> {
  const held = s.held.get(req.id);
  const session = held ?? openSession(s.stateDir, req.id);
  // The owner as state.json records it: it outlives this supervisor.
  assertSessionOwner(session.state, who, 'end');
  if (s.busy.has(req.id)) throw new SessionBusyError(req.id, 'another request of the supervisor is working on it', []);
  s.busy.add(req.id);
  try {
    await endSession(session, {
      wait: req.wait,
      force: req.force,
      timeout: req.timeout === undefined ? undefined : req.timeout * 1000,
      signal,
      onWait,
      offThread: true,
    });
    s.held.delete(req.id);
    s.log(`ended ${req.id}${held ? '' : ' (not held by this supervisor)'}`);
    return { id: req.id };
  } finally {
    s.busy.delete(req.id);
  }
}

/**
 * A persistent source session: the source entry of DESIGN.md (manage EX,
 * then source EX once the chroot's sessions have ended; begins queue
 * behind it) held by the supervisor under a session id until it is
 * ended. Its locks are this process's: a supervisor that stops lets the
 * source go (OFD locks a running command inherited stay with it).
 */
async function beginSource(s: SupervisorState, call: Extract<RelayedCall, { verb: 'source-begin' }>, who: Credentials, signal: AbortSignal, onWait: (info: WaitInfo) => void): Promise<{ id: string }> {
  const spec = s.o.resolveChroot(call.chroot);
  if (who.uid !== 0) for (const access of accessToSource(who, {})) authorize(spec.chroot, who, access);
  const id = call.id === undefined ? newId(spec.chroot.name) : validateId(call.id);
  const taken = () => s.sourceSessions.has(id) || s.busy.has(id) || existsSync(join(s.stateDir, id));
  if (taken()) throw new SessionExistsError(id);
  s.busy.add(id);
  try {
    const entry = await enterSource({
      stateDir: s.stateDir,
      chroot: spec.chroot,
      signal,
      timeout: call.timeout === undefined ? undefined : call.timeout * 1000,
      wait: call.wait,
      onWait,
    });
    if (signal.aborted || s.stopping) {
      entry.close();
      throw signal.reason ?? new SupervisorStoppingError();
    }
    s.sourceSessions.set(id, { id, entry, owner: who });
    s.log(`began source session ${id} (chroot ${spec.chroot.name}) for uid ${who.uid}: new sessions of it wait until it ends`);
    return { id };
  } finally {
    s.busy.delete(id);
  }
}

export function brokerHost(s: SupervisorState): BrokerHost {
  return {
    stateDir: s.stateDir,
    calls: s.o.relayCalls,
    resolveChroot: (name) => s.o.resolveChroot(name),
    begin: async (call, who, signal, hungUp, onWait) => {
      const r = await begin(s, { v: PROTOCOL_VERSION, op: 'begin', chroot: call.chroot, id: call.id, timeout: call.timeout, wait: call.wait }, who, signal, hungUp, onWait);
      return { id: r.id as string };
    },
    end: async (call, who, signal, onWait) => {
      await end(s, { v: PROTOCOL_VERSION, op: 'end', id: call.id, wait: call.wait, force: call.force, timeout: call.timeout }, who, signal, onWait);
    },
    hold: (session) => {
      s.held.set(session.id, session);
      s.log(`holding ${session.id}: its automatic session's command left processes holding it`);
    },
    recover: async (id, o) => {
      if (s.busy.has(id)) throw new SessionBusyError(id, 'another request of the supervisor is working on it', []);
      s.busy.add(id);
      try {
        const r = await recoverSession({ stateDir: s.stateDir, id, ...o });
        if (r.action === 'readopted') {
          s.held.set(id, r.session);
          s.log(readopted(id, r.remounted, r.killedHooks.length));
        } else {
          s.log(endedStale(id));
        }
        return r;
      } finally {
        s.busy.delete(id);
      }
    },
    beginSource: (call, who, signal, onWait) => beginSource(s, call, who, signal, onWait),
    sourceSession: (id) => s.sourceSessions.get(id),
    endSource: (id, who) => {
      const src = s.sourceSessions.get(id);
      if (!src) throw new SessionNotFoundError(id, s.stateDir);
      if (who.uid !== 0 && who.uid !== src.owner.uid) throw new SessionAccessError(id, who.uid, src.owner.uid, 'end');
      s.sourceSessions.delete(id);
      src.entry.close();
      s.log(`ended source session ${id} (chroot ${src.entry.chroot}): its source is let go`);
    },
    sourceSessions: () => [...s.sourceSessions.values()].map((x) => ({ id: x.id, chroot: x.entry.chroot, ownerUid: x.owner.uid })),
    stopping: () => s.stopping,
    log: (line) => s.log(line),
  };
}

/**
 * This process's fds by kind: files (locks, logs) and sockets (clients)
 * are what a leak would grow; the rest are pipes of hooks in flight and the
 * eventfds and epoll fds of lock-wait worker threads, which come and go
 * with the pool.
 */
function fdCounts(): { total: number; files: number; sockets: number } {
  let files = 0;
  let sockets = 0;
  const fds = readdirSync('/proc/self/fd');
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the fd of the readdir itself
    }
    if (target.startsWith('/')) files++;
    else if (target.startsWith('socket:')) sockets++;
  }
  return { total: fds.length - 1, files, sockets };
}

const round = (x: number) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : 0);
