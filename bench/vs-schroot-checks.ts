// The correctness rows of bench/vs-schroot: four situations where schroot
// is sloppy, each played against both tools on the same chroot. Each check
// reports what each tool did, in words, and whether warden kept its promise
// (schroot's outcome is reported, not judged).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountsUnder } from '../src/union/index.js';
import { sessionPaths } from '../src/sessions/session.js';
import * as schroot from './schroot.js';
import { WARDEN, timed, type Ran } from './procs.js';

export interface Check {
  situation: string;
  schroot: string;
  warden: string;
  /** warden did what DESIGN.md promises. */
  ok: boolean;
}

export interface WardenSide {
  chroot: string;
  source: string;
  stateDir: string;
  env: NodeJS.ProcessEnv;
}

const warden = (w: WardenSide, args: readonly string[]): Ran => timed(process.execPath, [WARDEN, ...args], w.env, false);
const lastLine = (s: string): string => s.trim().split('\n').pop() ?? '';
const mountCount = (path: string): number => mountsUnder(path).length;

/** A host process whose working directory is `dir` (it keeps a mount there busy); killed by the returned function. */
function busyIn(dir: string): () => Promise<void> {
  const p = spawn('sleep', ['120'], { cwd: dir, stdio: 'ignore' });
  return () =>
    new Promise((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
}

async function sourceWhileActive(s: schroot.SchrootSetup, w: WardenSide): Promise<Check> {
  const marker = '/vs-schroot-marker';
  const write = ['/bin/sh', '-c', `echo changed > ${marker}`];
  // schroot: the source is entered at once, under the live overlay.
  const sid = `${s.prefix}source`;
  schroot.begin(s, sid);
  let schrootSays: string;
  try {
    const entry = timed(schroot.SCHROOT, ['-c', `source:${s.name}`, '-d', '/', '--', ...write], process.env, false);
    const seen = schroot.runIn(sid, ['/bin/cat', marker], false);
    schrootSays =
      entry.status === 0
        ? `entered at once (${entry.ms.toFixed(0)} ms); the live session ${seen.stdout.trim() === 'changed' ? 'saw the change' : 'did not see the change'}`
        : `refused (exit ${entry.status}: ${lastLine(entry.stderr)})`;
  } finally {
    schroot.end(sid, false);
    rmSync(join(w.source, marker), { force: true });
  }
  // warden: the entry waits for the session; with --timeout it gives up, exit 5.
  const id = 'vs-source';
  warden(w, ['begin', '-c', w.chroot, '--id', id]);
  try {
    const entry = warden(w, ['source', '-c', w.chroot, '--timeout', '1', '--', ...write]);
    const changed = existsSync(join(w.source, marker));
    const seen = warden(w, ['run', '-s', id, '--', '/bin/cat', marker]);
    return {
      situation: 'source entry while a session is active',
      schroot: schrootSays,
      warden: `waited for the session, gave up after --timeout 1 (exit ${entry.status}); source ${changed ? 'CHANGED' : 'unchanged'}, session ${seen.status === 0 ? 'SAW a change' : 'unaffected'}`,
      ok: entry.status === 5 && !changed && seen.status !== 0,
    };
  } finally {
    warden(w, ['end', '-s', id]);
    rmSync(join(w.source, marker), { force: true });
  }
}

async function recoverActive(s: schroot.SchrootSetup, w: WardenSide): Promise<Check> {
  const sid = `${s.prefix}recover`;
  schroot.begin(s, sid);
  let schrootSays: string;
  try {
    const before = mountCount(join('/run/schroot/mount', sid));
    const r = schroot.recover(sid, false);
    const after = mountCount(join('/run/schroot/mount', sid));
    schrootSays = `exit ${r.status}; mounts of the session ${before} -> ${after}${after > before ? ' (stacked again)' : ''}`;
  } finally {
    schroot.end(sid, false);
  }
  const id = 'vs-recover';
  warden(w, ['begin', '-c', w.chroot, '--id', id]);
  try {
    const root = join(w.stateDir, id, 'root');
    const before = mountCount(root);
    const r = warden(w, ['recover', '-s', id]);
    const after = mountCount(root);
    return {
      situation: 'recovering an active session',
      schroot: schrootSays,
      warden: `refused, exit ${r.status} (${lastLine(r.stderr).slice(0, 60)}…); mounts ${before} -> ${after}`,
      ok: r.status === 5 && after === before,
    };
  } finally {
    warden(w, ['end', '-s', id]);
  }
}

async function endBusy(s: schroot.SchrootSetup, w: WardenSide): Promise<Check> {
  const sid = `${s.prefix}busy`;
  schroot.begin(s, sid);
  let schrootSays: string;
  const mounts = join('/run/schroot/mount', sid);
  const free = busyIn(join(mounts, 'tmp'));
  try {
    const before = mountCount(mounts);
    const r = schroot.end(sid, false);
    const left = mountCount(mounts);
    const listed = schroot.ourSessions(s).includes(sid);
    await free();
    const again = schroot.end(sid, false);
    schrootSays = `exit ${r.status}; ${left}/${before} mounts left, session ${listed ? 'still listed' : 'GONE from its list'}; ended once free: exit ${again.status}`;
  } finally {
    await free();
    schroot.end(sid, false);
  }
  // warden: the end fails naming the holder; the session (its upper layer
  // with what was written in it) stays, in phase ending, and ends once free.
  const id = 'vs-busy';
  warden(w, ['begin', '-c', w.chroot, '--id', id]);
  warden(w, ['run', '-s', id, '--', '/bin/sh', '-c', 'echo kept > /vs-data']);
  const root = join(w.stateDir, id, 'root');
  const freeW = busyIn(join(root, 'tmp'));
  try {
    const before = mountCount(root);
    const r = warden(w, ['end', '-s', id]);
    const left = mountCount(root);
    const kept = existsSync(join(sessionPaths(join(w.stateDir, id)).upper, 'vs-data')) && existsSync(join(w.stateDir, id, 'state.json'));
    await freeW();
    const again = warden(w, ['end', '-s', id]);
    const holder = /pid \d+/.exec(r.stderr)?.[0];
    return {
      situation: 'ending a session whose mount is busy',
      schroot: schrootSays,
      warden: `exit ${r.status}, naming the holder (${holder ?? 'NONE NAMED'}); ${left}/${before} mounts left, session and its data ${kept ? 'intact' : 'LOST'}; ended once free: exit ${again.status}`,
      ok: r.status !== 0 && holder !== undefined && kept && again.status === 0,
    };
  } finally {
    await freeW();
    warden(w, ['end', '-s', id]);
  }
}

async function malformedEntry(s: schroot.SchrootSetup, w: WardenSide): Promise<Check> {
  const bad = join('/var/lib/schroot/session', `${s.prefix}malformed`);
  writeFileSync(bad, '[broken\nthis is not a keyfile\n');
  let schrootSays: string;
  try {
    const list = timed(schroot.SCHROOT, ['-l', '--all-sessions'], process.env, false);
    const auto = timed(schroot.SCHROOT, ['-c', s.name, '-d', '/', '--', 'true'], process.env, false);
    schrootSays = `list --all-sessions: exit ${list.status}${list.status ? ` (${lastLine(list.stderr).slice(0, 50)})` : ''}; an automatic session: exit ${auto.status}`;
  } finally {
    rmSync(bad, { force: true });
  }
  const dir = join(w.stateDir, 'vs-malformed');
  mkdirSync(dir);
  writeFileSync(join(dir, 'state.json'), '{"version": 1, "status": "act');
  writeFileSync(join(dir, 'lock'), '');
  try {
    const list = warden(w, ['list', '--sessions', '--json']);
    const entry = list.status === 0 ? (JSON.parse(list.stdout) as { id: string; status: string }[]).find((e) => e.id === 'vs-malformed') : undefined;
    const auto = warden(w, ['run', '-c', w.chroot, '-d', '/', '--', 'true']);
    return {
      situation: 'one malformed session file in the state dir',
      schroot: schrootSays,
      warden: `list --sessions: exit ${list.status}, the entry shown ${entry?.status ?? 'NOT AT ALL'}; an automatic session: exit ${auto.status}`,
      ok: list.status === 0 && entry?.status === 'corrupt' && auto.status === 0,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function correctnessChecks(s: schroot.SchrootSetup, w: WardenSide): Promise<Check[]> {
  const out: Check[] = [];
  for (const check of [sourceWhileActive, recoverActive, endBusy, malformedEntry]) out.push(await check(s, w));
  return out;
}

/** The checks as a table: one line per situation and tool. */
export function printChecks(checks: readonly Check[]): void {
  const lines = ['correctness (same chroot, same run)', '-'.repeat(100)];
  for (const c of checks) {
    lines.push(`[${c.situation}] warden ${c.ok ? 'PASS' : 'FAIL'}`, `  schroot: ${c.schroot}`, `  warden:  ${c.warden}`);
  }
  lines.push('-'.repeat(100), `${checks.filter((c) => c.ok).length}/${checks.length} checks: warden kept its promise`);
  console.log(lines.join('\n'));
}

