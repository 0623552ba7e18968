// The load: looping workers that each run real `warden` CLI processes one
// after the other, and the killer that SIGKILLs them (and now and then the
// supervisor). Every session gets an id of the soak's choosing, so a worker
// whose process was killed can still end the session it may have left.
import type { CliResult, CliRunner } from './cli.js';
import type { Recorder } from './record.js';
import { CHROOT } from './setup.js';
import type { SoakSupervisor } from './supervisor.js';

export interface Load {
  cli: CliRunner;
  rec: Recorder;
  sup: SoakSupervisor;
  stop: AbortSignal;
  /** Source entries: the last N started, and the last N known to be written. */
  counter: { issued: number; written: number };
}

const rand = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

/** Sleeps `ms`, or less when the load is stopped. */
export function pause(ms: number, stop: AbortSignal): Promise<void> {
  if (stop.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stop.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    stop.addEventListener('abort', done, { once: true });
  });
}

/**
 * Counts a finished call: completed, or failed with a reason. Killed by the
 * soak, an expected refusal (`expected` exit codes), or any failure while
 * the supervisor was being killed are load; anything else is a violation.
 */
export function account(l: Load, r: CliResult, expected: readonly number[]): boolean {
  if (r.code === 0) {
    l.rec.op(r.kind);
    return true;
  }
  const how = r.code === null ? `signal ${r.signal}` : `exit ${r.code}`;
  if (r.hung) {
    l.rec.failure(`${r.kind}: hung`, r.stderrTail);
    l.rec.violation('unexpected CLI failure', `warden ${r.args.join(' ')} still ran after ${((r.endedAt - r.startedAt) / 1000).toFixed(0)} s: ${r.stderrTail}`);
  } else if (r.killed) {
    l.rec.failure(`${r.kind}: killed`, '');
  } else if (r.code !== null && expected.includes(r.code)) {
    l.rec.failure(`${r.kind}: ${how}`, r.stderrTail);
  } else if (l.sup.outageDuring(r.startedAt, r.endedAt)) {
    l.rec.failure(`${r.kind}: ${how} (supervisor killed meanwhile)`, r.stderrTail);
  } else {
    l.rec.failure(`${r.kind}: ${how} (unexpected)`, r.stderrTail);
    l.rec.violation('unexpected CLI failure', `warden ${r.args.join(' ')}: ${how}: ${r.stderrTail}`);
  }
  return false;
}

function wrongOutput(l: Load, r: CliResult, want: string): void {
  l.rec.violation('wrong command output', `warden ${r.args.join(' ')} printed ${JSON.stringify(r.stdout.slice(0, 200))}, expected ${want}`);
}

/**
 * Sessions a worker may have left behind (its begin, run or end was killed
 * or failed): ended with `warden end -s ID` before its next round, until it
 * is gone. Without this the supervisor, which re-adopts every session that
 * goes stale, would hold them for ever, and source entries would only ever
 * time out behind them.
 */
class Leftovers {
  readonly #ids = new Map<string, number>();

  add(id: string): void {
    this.#ids.set(id, this.#ids.get(id) ?? 0);
  }

  async end(l: Load): Promise<void> {
    for (const [id, tries] of this.#ids) {
      if (l.stop.aborted) return;
      const r = await l.cli.run('end (leftover)', ['end', '-s', id]);
      // 4: the killed call never made it, or something else ended it already.
      account(l, r, [4, 5]);
      // Shutdown ends what is still left after a few tries.
      if (r.code === 0 || r.code === 4 || tries >= 5) this.#ids.delete(id);
      else this.#ids.set(id, tries + 1);
    }
  }
}

/** Worker 1: automatic sessions that write inside the session and read it back. */
export async function automaticSessions(l: Load, w: number): Promise<void> {
  const left = new Leftovers();
  for (let n = 1; !l.stop.aborted; n++) {
    await left.end(l);
    const id = `soak-a${w}-${n}`;
    const r = await l.cli.run('run -c', ['run', '-c', CHROOT, '--id', id, '--', '/bin/sh', '-c', 'echo $$ > /soak-file && cat /soak-file']);
    if (account(l, r, [5, 7])) {
      if (!/^\d+\n$/.test(r.stdout)) wrongOutput(l, r, 'the shell\'s pid');
    } else {
      left.add(id);
    }
    await pause(rand(0, 200), l.stop);
  }
}

/** Worker 2: persistent sessions: begin, two runs that write and read back, end. */
export async function persistentSessions(l: Load, w: number): Promise<void> {
  const left = new Leftovers();
  for (let n = 1; !l.stop.aborted; n++) {
    await left.end(l);
    const id = `soak-p${w}-${n}`;
    const b = await l.cli.run('begin', ['begin', '-c', CHROOT, '--id', id]);
    if (!account(l, b, [5, 7])) {
      // A killed begin may still have been carried out by the supervisor.
      left.add(id);
      continue;
    }
    if (b.stdout !== `${id}\n`) wrongOutput(l, b, JSON.stringify(`${id}\n`));
    let lines: string[] = [];
    for (const i of [1, 2]) {
      const line = `${id}-${i}`;
      const r = await l.cli.run('run -s', ['run', '-s', id, '--', '/bin/sh', '-c', `echo ${line} >> /persist-file && cat /persist-file`]);
      if (account(l, r, [5, 7])) {
        // What the earlier run wrote must still be there, unless it was killed before writing.
        const want = [...lines, line];
        if (r.stdout !== `${want.join('\n')}\n` && !(lines.length < i - 1 && r.stdout.endsWith(`${line}\n`))) wrongOutput(l, r, JSON.stringify(want.join('\n')));
        lines = want;
      }
    }
    const e = await l.cli.run('end', ['end', '-s', id]);
    if (!account(l, e, [5])) left.add(id);
    await pause(rand(0, 200), l.stop);
  }
}

/** Worker 3: source entries, each writing the next N to /counter in the source. */
export async function sourceEntries(l: Load): Promise<void> {
  while (!l.stop.aborted) {
    const n = ++l.counter.issued;
    const r = await l.cli.run('source', ['source', '-c', CHROOT, '--timeout', '20', '--', '/bin/sh', '-c', `echo ${n} > /counter`]);
    if (account(l, r, [5, 7])) l.counter.written = n;
    await pause(rand(500, 1_500), l.stop);
  }
}

/** Worker 4: `warden recover --all` every few seconds. */
export async function recoverAll(l: Load): Promise<void> {
  while (!l.stop.aborted) {
    await pause(rand(2_000, 4_000), l.stop);
    if (l.stop.aborted) break;
    // 4 and 5: a session ended, or re-adopted by the supervisor, between recover's listing and its turn.
    account(l, await l.cli.run('recover', ['recover', '--all']), [4, 5, 7]);
  }
}

/** Worker 5: `warden list --sessions --json`, parsed. */
export async function listSessionsLoop(l: Load): Promise<void> {
  while (!l.stop.aborted) {
    const r = await l.cli.run('list', ['list', '--sessions', '--json']);
    if (account(l, r, [])) {
      let ok = false;
      try {
        const list = JSON.parse(r.stdout) as { id?: unknown; status?: unknown }[];
        ok = Array.isArray(list) && list.every((e) => typeof e.id === 'string' && ['active', 'stale', 'corrupt'].includes(e.status as string));
      } catch {
        ok = false;
      }
      if (!ok) wrongOutput(l, r, 'a JSON array of sessions, each active, stale or corrupt');
    }
    await pause(rand(500, 1_500), l.stop);
  }
}

/**
 * Worker 6: every 1-3 s SIGKILLs one live CLI process of the workers above
 * (never a hook or anything the supervisor started: those are not the
 * soak's children). The supervisor itself is killed and started again at
 * random times, the first within 20-50 s so that a short run has one too.
 */
export async function killer(l: Load): Promise<void> {
  let nextSupervisorKill = Date.now() + rand(20_000, 50_000);
  while (!l.stop.aborted) {
    await pause(rand(1_000, 3_000), l.stop);
    if (l.stop.aborted) break;
    if (Date.now() >= nextSupervisorKill) {
      nextSupervisorKill = Date.now() + rand(45_000, 75_000);
      l.rec.kill('supervisor');
      try {
        await l.sup.killAndRestart();
      } catch (e) {
        l.rec.violation('unexpected CLI failure', `warden supervise did not start again after a kill: ${(e as Error).message}`);
      }
      continue;
    }
    const victim = l.cli.pick();
    if (victim && l.cli.kill(victim)) l.rec.kill(victim.kind);
  }
}
