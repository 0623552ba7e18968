// Two "hosts" sharing one GlusterFS volume, on this machine: a glusterd of
// our own (started without systemd, as our child, with its own working,
// run and log directories under a temp dir), a one-brick volume on local
// disk, and two FUSE mounts of it, A and B. Build-farm tests (issue 20) use
// the mounts as the shared storage of two build hosts: the glusterfs client
// behind each mount is what a real host runs, and locks taken through one
// mount reach the other only through the brick's lock translator.
//
// Installs nothing: .ci/run installs Debian's glusterfs-server. Where it is
// missing, or glusterd cannot start, startGlusterFarm() says why ({ skip })
// and the caller skips its tests with that reason in their titles.
//
// One glusterd per machine: the bricks it starts fetch their volfile from
// the management port 24007 whatever glusterd listens on (glusterd passes no
// --volfile-server-port to glusterfsd), so a second glusterd cannot run
// beside another one. Test processes therefore take turns, through an
// fcntl lock on MACHINE_LOCK held from start to close(); a glusterd that is
// not ours on the port makes the tests skip, naming it.
//
// What glusterd writes outside the temp dir, and close() removes: the
// brick's log (/var/log/glusterfs/bricks/<brick path>.log) and its socket
// (/var/run/gluster/<hash>.socket). What it leaves, as any glusterd run
// does: empty directories under /var/lib/glusterd and /var/log/glusterfs,
// and one line per volume command in /var/log/glusterfs/cmd_history.log.
//
// A test process killed before close() leaves its glusterd, brick and
// clients running; the next startGlusterFarm() reaps them (reapOrphans).
//
// Cost, measured on the project's 2-core VM (Debian 12, glusterfs 10.3,
// other test suites running beside): setup 2.1-5.0 s, of which glusterd's
// first answer to the CLI 1.7-4.5 s, volume create + start 0.3-0.6 s, two
// mounts 0.1-0.2 s; teardown 1.5-2.0 s, most of it glusterd's own exit
// after SIGTERM. test/farm/*.test.ts log both on every run.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { lockPath, type FileLock } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';

const run = promisify(execFile);

export const MACHINE_LOCK = existsSync('/run/lock') ? '/run/lock/warden-test-glusterd.lock' : join(tmpdir(), 'warden-test-glusterd.lock');
/** glusterd's management port; see above for why it cannot be another. */
export const GLUSTERD_PORT = 24007;
/** Another test process may hold the machine for a whole test file. */
const MACHINE_LOCK_TIMEOUT_MS = 10 * 60_000;
const READY_TIMEOUT_MS = 30_000;
const COMMAND_TIMEOUT_MS = 60_000;
const EXIT_TIMEOUT_MS = 15_000;

export type Host = 'A' | 'B';

export interface FarmTimings {
  /** From spawning glusterd to its first answer to the CLI. */
  glusterdMs: number;
  /** volume create + start. */
  volumeMs: number;
  /** Both mounts. */
  mountsMs: number;
  /** All of setup, the wait for the machine lock excluded. */
  setupMs: number;
}

export interface GlusterFarm {
  readonly volume: string;
  readonly tmp: string;
  /** Mount points: what host A and host B see of the volume. */
  readonly mounts: Readonly<Record<Host, string>>;
  /** The brick directory (local disk); tests must not touch it. */
  readonly brick: string;
  readonly timings: FarmTimings;
  /** The pid of the glusterfs client process serving a host's mount, if it runs. */
  clientPid(host: Host): number | undefined;
  /** Unmounts a host's mount (lazily if its client is gone) and mounts it again. */
  remount(host: Host): Promise<void>;
  /**
   * The requests the brick served since the last call, by fop (`gluster
   * volume profile VOL info incremental`; profiling starts on the first
   * call, which returns {}). Asked through a shell started with the farm,
   * before the caller opened anything on the mounts: a child of the
   * caller would hold copies of its fds until its exec, which closes them,
   * and every such close on a FUSE mount is a FLUSH the brick would count.
   */
  brickFops(): Promise<Record<string, number>>;
  /**
   * Tears everything down in reverse: both mounts, the volume (stopped and
   * deleted), the brick process if it survived, glusterd by its pid, the
   * files it left outside the temp dir, the temp dir, the machine lock.
   * Carries on past errors and throws them together at the end. Idempotent:
   * every call returns the same promise.
   */
  close(): Promise<{ teardownMs: number }>;
}

export type Ensured<T> = T | { skip: string };

/** Why this machine cannot run a farm, before trying; undefined when it may. */
export function cannotRunGluster(): string | undefined {
  if (process.getuid?.() !== 0) return `needs root (uid ${process.getuid?.()}) to run glusterd and mount`;
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse (the glusterfs client is a FUSE filesystem)';
  for (const [bin, pkg] of [
    ['glusterd', 'glusterfs-server'],
    ['gluster', 'glusterfs-cli'],
    ['mount.glusterfs', 'glusterfs-client'],
  ] as const) {
    if (which(bin) === undefined) return `${bin} is not installed (apt-get install ${pkg}; .ci/run does)`;
  }
  return undefined;
}

function which(bin: string): string | undefined {
  return ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].map((d) => join(d, bin)).find((p) => existsSync(p));
}

/**
 * Starts glusterd, a one-brick volume and two mounts of it. Waits for the
 * machine lock first (another test file may be using glusterd). Everything
 * made on the way is torn down again when a later step fails.
 */
export async function startGlusterFarm(): Promise<Ensured<GlusterFarm>> {
  const cannot = cannotRunGluster();
  if (cannot) return { skip: cannot };
  const machine = await lockPath(MACHINE_LOCK, 'exclusive', { timeout: MACHINE_LOCK_TIMEOUT_MS, fileMode: 0o600 });
  try {
    await reapOrphans();
  } catch (e) {
    machine.close();
    throw e;
  }
  const listener = tcpListener(GLUSTERD_PORT);
  if (listener !== undefined) {
    machine.close();
    return { skip: `something else listens on glusterd's port ${GLUSTERD_PORT} (${listener}); the harness needs the port to itself` };
  }
  const farm = new Farm(machine);
  try {
    await farm.start();
    return farm;
  } catch (e) {
    const tail = farm.glusterdLogTail();
    await farm.close().catch(() => undefined);
    if (e instanceof GlusterdStartError) return { skip: `glusterd could not be started: ${e.message}${tail ? `; its log ends: ${tail}` : ''}` };
    throw e;
  }
}

class GlusterdStartError extends Error {}

const TMP_PREFIX = join(tmpdir(), 'warden-gluster-');

/**
 * Cleans up after a test process that died without closing its farm
 * (SIGKILL, ava's timeout): its glusterd, brick and clients keep running
 * and would hold the port. They are ours beyond doubt: each names a
 * `warden-gluster-*` temp dir in its command line, and no live harness
 * exists while we hold the machine lock.
 * Preconditions: MACHINE_LOCK is held.
 */
async function reapOrphans(): Promise<void> {
  const dirs = new Set<string>();
  const pids: number[] = [];
  const sockets: string[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!/gluster(d|fs|fsd)$/.test(argv[0] ?? '')) continue;
    const dir = argv.map((a) => a.replace(/^--?[a-z-]+=/, '')).find((a) => a.startsWith(TMP_PREFIX))?.slice(TMP_PREFIX.length).split('/')[0];
    if (dir === undefined) continue;
    dirs.add(TMP_PREFIX + dir);
    pids.push(Number(pid));
    const socket = argv[argv.indexOf('-S') + 1];
    if (argv.includes('-S') && socket?.match(/^\/(var\/)?run\/gluster\/[0-9a-f]+\.socket$/)) sockets.push(socket);
  }
  for (const dir of dirs) for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m.mountPoint]);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const pid of pids) await exited(pid, EXIT_TIMEOUT_MS);
  for (const socket of sockets) rmSync(socket, { force: true });
  for (const dir of dirs) {
    const brickLog = join('/var/log/glusterfs/bricks', `${join(dir, 'brick', 'b').slice(1).replaceAll('/', '-')}.log`);
    rmSync(brickLog, { force: true });
    if (mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
  }
}

class Farm implements GlusterFarm {
  readonly volume = `warden${process.pid}`;
  readonly tmp: string;
  readonly mounts: Record<Host, string>;
  readonly brick: string;
  readonly timings: FarmTimings = { glusterdMs: 0, volumeMs: 0, mountsMs: 0, setupMs: 0 };
  #machine: FileLock;
  #glusterd: ChildProcess | undefined;
  #glusterdExited: Promise<void> | undefined;
  #volumeCreated = false;
  #volumeStarted = false;
  #brickPid: number | undefined;
  #brickSocket: string | undefined;
  #closing: Promise<{ teardownMs: number }> | undefined;
  #asker: Asker | undefined;
  #profiling = false;

  constructor(machine: FileLock) {
    this.#machine = machine;
    this.tmp = mkdtempSync(join(tmpdir(), 'warden-gluster-'));
    this.brick = join(this.tmp, 'brick', 'b');
    this.mounts = { A: join(this.tmp, 'hostA'), B: join(this.tmp, 'hostB') };
    for (const d of ['wd', 'run', 'log', 'brick', 'hostA', 'hostB']) mkdirSync(join(this.tmp, d));
  }

  get #sock(): string {
    return join(this.tmp, 'glusterd.socket');
  }

  async start(): Promise<void> {
    const t0 = performance.now();
    await this.#startGlusterd();
    const t1 = performance.now();
    await this.#createVolume();
    const t2 = performance.now();
    for (const host of ['A', 'B'] as const) await this.#mount(host);
    this.#asker = new Asker();
    const t3 = performance.now();
    Object.assign(this.timings, { glusterdMs: t1 - t0, volumeMs: t2 - t1, mountsMs: t3 - t2, setupMs: t3 - t0 });
  }

  async #startGlusterd(): Promise<void> {
    // The package's /etc/glusterfs/glusterd.vol, with every directory of
    // glusterd's own in the temp dir, and the CLI's unix socket there too.
    const vol = join(this.tmp, 'glusterd.vol');
    writeFileSync(
      vol,
      [
        'volume management',
        '    type mgmt/glusterd',
        `    option working-directory ${join(this.tmp, 'wd')}`,
        `    option run-directory ${join(this.tmp, 'run')}`,
        `    option glusterd-sockfile ${this.#sock}`,
        '    option transport-type socket',
        `    option transport.socket.listen-port ${GLUSTERD_PORT}`,
        '    option transport.socket.read-fail-log off',
        '    option ping-timeout 0',
        '    option event-threads 1',
        'end-volume',
        '',
      ].join('\n'),
    );
    // -N: stays in the foreground, so its pid is our child's and ours to end.
    const child = spawn(which('glusterd')!, ['-N', '-f', vol, '-p', join(this.tmp, 'glusterd.pid'), '-l', join(this.tmp, 'log', 'glusterd.log')], {
      stdio: 'ignore',
    });
    this.#glusterd = child;
    this.#glusterdExited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (e) => resolve(e));
    });
    if (spawned) throw new GlusterdStartError(spawned.message);
    // glusterd makes its socket at once but answers only after its init
    // (~3 s here); nothing tells us when, so ask until it answers.
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new GlusterdStartError(`it exited (${child.exitCode ?? child.signalCode})`);
      const r = await this.#gluster(['volume', 'list'], { check: false, timeout: 5 });
      if (r.ok) return;
      if (Date.now() > deadline) throw new GlusterdStartError(`no answer on ${this.#sock} after ${READY_TIMEOUT_MS} ms: ${r.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async #createVolume(): Promise<void> {
    // glusterd refuses "localhost" for a brick; the host name, or failing
    // that an address of this machine, names it. `force`: the brick is on
    // the root filesystem, which glusterd otherwise refuses.
    const candidates = [hostname(), ...Object.values(networkInterfaces()).flatMap((l) => (l ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.address))];
    let last = '';
    for (const host of candidates) {
      const r = await this.#gluster(['volume', 'create', this.volume, `${host}:${this.brick}`, 'force'], { check: false });
      if (r.ok) {
        this.#volumeCreated = true;
        break;
      }
      last = `${host}: ${r.output}`;
    }
    if (!this.#volumeCreated) throw new GlusterdStartError(`volume create failed for every name of this host (${last})`);
    this.#volumeStarted = true; // a failed start may still have started the brick: stop it anyway
    await this.#gluster(['volume', 'start', this.volume]);
    this.#brickPid = brickPid(join(this.tmp, 'run', 'vols', this.volume));
    if (this.#brickPid !== undefined) this.#brickSocket = argAfter(this.#brickPid, '-S');
  }

  // negative-timeout=1, as README's "Build farm" advises for a source:
  // a command's PATH search and its loader's probes are round trips to the
  // volume for every name that is missing, and otherwise never cached.
  // Safe for warden's promise because a shared entry holds its locks as
  // long as the mounts' caches last (SHARED_CACHE_MS, 1 s).
  async #mount(host: Host): Promise<void> {
    await run('mount', ['-t', 'glusterfs', '-o', `log-file=${join(this.tmp, 'log', `mount-${host}.log`)},negative-timeout=1`, `localhost:/${this.volume}`, this.mounts[host]], {
      timeout: COMMAND_TIMEOUT_MS,
    });
  }

  async brickFops(): Promise<Record<string, number>> {
    const asker = this.#asker;
    if (!asker) throw new Error('brickFops: the farm is closed');
    const cli = [which('gluster')!, `--glusterd-sock=${this.#sock}`, `--log-file=${join(this.tmp, 'log', 'cli.log')}`, '--mode=script', 'volume', 'profile', this.volume];
    if (!this.#profiling) {
      await asker.ask([...cli, 'start']);
      this.#profiling = true;
      await asker.ask([...cli, 'info', 'incremental']);
      return {};
    }
    return parseProfile(await asker.ask([...cli, 'info', 'incremental']));
  }

  clientPid(host: Host): number | undefined {
    // The client's last argument is its mount point (a path only this farm uses).
    for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      let argv: string[];
      try {
        argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
      } catch {
        continue;
      }
      if (argv[0]?.endsWith('glusterfs') && argv.at(-1) === this.mounts[host]) return Number(pid);
    }
    return undefined;
  }

  async remount(host: Host): Promise<void> {
    await this.#unmount(host);
    await this.#mount(host);
  }

  async #unmount(host: Host): Promise<void> {
    const dir = this.mounts[host];
    if (!mountsUnder(dir).some((m) => m.mountPoint === dir)) return;
    const pid = this.clientPid(host);
    // A mount whose client was killed answers ENOTCONN; a lazy unmount
    // still detaches it.
    const r = spawnSync('umount', pid === undefined ? ['-l', dir] : [dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`umount ${dir}: ${r.stderr.trim()}`);
    // The client exits once its mount is gone.
    if (pid !== undefined) await exited(pid, EXIT_TIMEOUT_MS);
  }

  close(): Promise<{ teardownMs: number }> {
    return (this.#closing ??= this.#teardown());
  }

  async #teardown(): Promise<{ teardownMs: number }> {
    const t0 = performance.now();
    const errors: unknown[] = [];
    const step = async (f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        errors.push(e);
      }
    };
    await step(() => this.#asker?.close());
    this.#asker = undefined;
    for (const host of ['B', 'A'] as const) {
      await step(() => this.#unmount(host));
      await step(() => {
        // A client that outlived its mount (or the unmount failed): ours by its mount point.
        const pid = this.clientPid(host);
        if (pid !== undefined) process.kill(pid, 'SIGKILL');
      });
    }
    if (this.#volumeStarted && this.#glusterdAlive()) await step(() => this.#gluster(['volume', 'stop', this.volume, 'force']));
    if (this.#volumeCreated && this.#glusterdAlive()) await step(() => this.#gluster(['volume', 'delete', this.volume]));
    await step(async () => {
      if (this.#brickPid !== undefined && alive(this.#brickPid) && argAfter(this.#brickPid, '--brick-name') === this.brick) {
        process.kill(this.#brickPid, 'SIGKILL');
        await exited(this.#brickPid, EXIT_TIMEOUT_MS);
      }
    });
    await step(async () => {
      const child = this.#glusterd;
      if (!child || !this.#glusterdAlive()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_TIMEOUT_MS);
      await this.#glusterdExited;
      clearTimeout(timer);
    });
    await step(() => {
      // glusterd's files outside the temp dir, by the exact names it gave them.
      rmSync(join('/var/log/glusterfs/bricks', `${this.brick.slice(1).replaceAll('/', '-')}.log`), { force: true });
      if (this.#brickSocket?.startsWith('/var/run/gluster/') || this.#brickSocket?.startsWith('/run/gluster/')) rmSync(this.#brickSocket, { force: true });
    });
    await step(() => {
      const left = mountsUnder(this.tmp).map((m) => m.mountPoint);
      // Never delete through a mount: that would be the volume's content, or worse.
      if (left.length > 0) throw new Error(`still mounted, ${this.tmp} kept: ${left.join(', ')}`);
      rmSync(this.tmp, { recursive: true, force: true });
    });
    this.#machine.close();
    const teardownMs = performance.now() - t0;
    if (errors.length > 0) throw new AggregateError(errors, `gluster farm teardown: ${errors.map((e) => (e as Error).message).join('; ')}`);
    return { teardownMs };
  }

  #glusterdAlive(): boolean {
    const c = this.#glusterd;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  async #gluster(args: string[], o: { check?: boolean; timeout?: number } = {}): Promise<{ ok: boolean; output: string }> {
    const argv = [`--glusterd-sock=${this.#sock}`, `--log-file=${join(this.tmp, 'log', 'cli.log')}`, '--mode=script', ...(o.timeout ? [`--timeout=${o.timeout}`] : []), ...args];
    try {
      const { stdout, stderr } = await run(which('gluster')!, argv, { timeout: COMMAND_TIMEOUT_MS });
      return { ok: true, output: (stdout + stderr).trim() };
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      const output = `${err.stdout ?? ''}${err.stderr ?? ''}`.trim() || err.message;
      if (o.check === false) return { ok: false, output };
      throw new Error(`gluster ${args.join(' ')}: ${output}`, { cause: e });
    }
  }

  glusterdLogTail(): string {
    try {
      const lines = readFileSync(join(this.tmp, 'log', 'glusterd.log'), 'utf8').trim().split('\n');
      return lines.filter((l) => / [EC] \[/.test(l)).slice(-3).join(' | ') || lines.slice(-2).join(' | ');
    } catch {
      return '';
    }
  }
}

/**
 * A shell that runs one command at a time for us, its output read back up
 * to a marker line: started once, so that our later fds never reach it.
 */
class Asker {
  #child: ChildProcess;
  #out = '';
  #waiting: (() => void) | undefined;

  constructor() {
    this.#child = spawn('/bin/sh', [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.#out += d;
      this.#waiting?.();
    });
    this.#child.stderr!.resume();
  }

  async ask(argv: string[]): Promise<string> {
    const mark = `--end-${Math.random().toString(36).slice(2)}--`;
    this.#out = '';
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${argv.join(' ')}`)), COMMAND_TIMEOUT_MS);
      this.#waiting = () => {
        if (!this.#out.includes(`${mark}\n`)) return;
        clearTimeout(timer);
        this.#waiting = undefined;
        resolve();
      };
    });
    const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
    this.#child.stdin!.write(`${quoted} 2>&1; echo ${mark}\n`);
    await done;
    return this.#out.slice(0, this.#out.indexOf(mark));
  }

  async close(): Promise<void> {
    const c = this.#child;
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.stdin!.end();
    await exited;
  }
}

/** The fops of a `volume profile ... info incremental` answer, summed over its bricks: { LK: 4, ... }. */
export function parseProfile(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const section of text.split(/Interval \d+ Stats:/).slice(1)) {
    for (const line of section.split('\n')) {
      // %-latency, avg, min, max (each with a unit), calls, fop
      const m = /^\s*[\d.]+\s+(?:[\d.]+\s*[num]?s\s+){3}(\d+)\s+([A-Z_]+)\s*$/.exec(line);
      if (m) out[m[2]!] = (out[m[2]!] ?? 0) + Number(m[1]);
    }
  }
  return out;
}

/** "pid N (comm)" of whatever listens on a TCP port, "pid unknown" if it is not ours to see, undefined if nothing does. */
function tcpListener(port: number): string | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; state 0A is LISTEN; field 9 the socket inode.
      if (f.length > 9 && f[1]!.endsWith(`:${hexPort}`) && f[3] === '0A') inodes.add(f[9]!);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) return `pid ${pid} (${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()})`;
      } catch {
        // gone
      }
    }
  }
  return 'pid unknown';
}

function brickPid(volRunDir: string): number | undefined {
  try {
    const pidFile = readdirSync(volRunDir).find((n) => n.endsWith('.pid'));
    if (pidFile === undefined) return undefined;
    const pid = Number(readFileSync(join(volRunDir, pidFile), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The argument after `flag` in a process's command line. */
function argAfter(pid: number, flag: string): string | undefined {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    // A zombie still answers kill(0); its state in /proc/PID/stat says Z.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Polls until a process that is not our child is gone (no exit event reaches us for it). */
async function exited(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) throw new Error(`pid ${pid} still running after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * For a test file of the farm: a started farm, or why its tests are skipped
 * (root is needed to mount; in POSIX lock mode two hosts in one process
 * tree would be one lock owner), and a title that says so.
 */
export async function farmOrSkip(o: { needsRoot: boolean }): Promise<{ farm: GlusterFarm | undefined; skip: string | undefined; title: (s: string) => string }> {
  const why = async (): Promise<string | GlusterFarm> => {
    if (o.needsRoot && process.getuid?.() !== 0) return 'needs root';
    if (process.env.WARDEN_LOCK_MODE === 'posix') return 'POSIX lock mode: two hosts in one process tree would share lock owners';
    const started = await startGlusterFarm();
    return 'skip' in started ? started.skip : started;
  };
  const started = await why();
  const skip = typeof started === 'string' ? started : undefined;
  return { farm: typeof started === 'string' ? undefined : started, skip, title: (s) => (skip ? `${s} (skipped: ${skip})` : s) };
}
