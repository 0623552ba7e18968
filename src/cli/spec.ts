// Every verb's options, in one table: the fast parser (args.ts, on Node's util.parseArgs) reads
// it on every call, and yargs builds --help from the same table only when
// help is asked for (loading yargs costs more than Node's own start-up).

import type { VerbName } from './main.js';

export interface OptionSpec {
  type: 'string' | 'boolean' | 'number';
  alias?: string;
  describe: string;
  /** Shown in help as the value's name. */
  value?: string;
}

export interface VerbSpec {
  /** One of main.ts's verbs (the one list of them). */
  name: VerbName;
  usage: string;
  describe: string;
  options: Record<string, OptionSpec>;
  /** Names of positional arguments, in order (`?` suffix: optional). */
  positional?: string[];
  /** Takes a command after the options (`-- CMD...`). */
  command?: boolean;
  examples?: [string, string][];
}

const json: OptionSpec = { type: 'boolean', describe: 'machine-readable output' };

// schroot's -p: the command otherwise gets a minimal environment (sessions/environment.ts).
const preserveEnvironment: OptionSpec = {
  type: 'boolean',
  alias: 'p',
  describe: "keep the caller's environment (minus schroot's environment filter: LD_*, IFS, BASH_ENV, ...) instead of a minimal one (TERM; HOME, USER, LOGNAME, SHELL of the user; a standard PATH)",
};

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  config: { type: 'string', describe: 'configuration file (default: $WARDEN_CONFIG, ./etc/warden.conf, /etc/warden/warden.conf)', value: 'FILE' },
  'state-dir': { type: 'string', describe: 'where sessions live (default: $WARDEN_STATE_DIR, [warden] state-dir=, ./sessions)', value: 'DIR' },
  'no-supervisor': { type: 'boolean', describe: "root only: do the work in this process, not through a running supervisor (the relay's fast path)" },
  help: { type: 'boolean', alias: 'h', describe: 'show help' },
};

const lockWait: Record<string, OptionSpec> = {
  timeout: { type: 'number', describe: 'give up waiting for a lock after S seconds (exit 5)', value: 'S' },
  'no-wait': { type: 'boolean', describe: 'fail at once (exit 5) instead of waiting for a lock' },
};

export const VERBS: VerbSpec[] = [
  {
    name: 'run',
    usage: 'warden run (-c CHROOT | -s ID) [-u USER] [-d DIR] [-p] [--] CMD...',
    describe: 'run a command in a session: -c begins an automatic session and ends it afterwards; -s uses an existing one',
    options: {
      chroot: { type: 'string', alias: 'c', describe: 'begin an automatic session of this chroot (name or alias)', value: 'CHROOT' },
      session: { type: 'string', alias: 's', describe: 'run in this existing session', value: 'ID' },
      id: { type: 'string', describe: 'id for the automatic session (default: CHROOT-UUID)', value: 'ID' },
      user: { type: 'string', alias: 'u', describe: 'run as this user (name or uid, from the host /etc/passwd)', value: 'USER' },
      directory: { type: 'string', alias: 'd', describe: 'working directory inside the session (default: the current one if it exists there, else /)', value: 'DIR' },
      'preserve-environment': preserveEnvironment,
      ...lockWait,
    },
    command: true,
    examples: [
      ['warden run -c demo -- sh -c "echo hi > /tmp/x; cat /tmp/x"', 'an automatic session: the write stays in the session'],
      ['warden run -s demo-1234 -u nobody -d /tmp -- id', 'run in an existing session as nobody'],
      ['warden run -c demo -p -- make', "run with the caller's environment (filtered) instead of a minimal one"],
    ],
  },
  {
    name: 'source',
    usage: 'warden source -c CHROOT [--timeout S] [--no-wait] [--recover-stale] [-u USER] [-d DIR] [-p] [--] CMD...',
    describe:
      'run a command in the source chroot itself, exclusively: new sessions wait, and the command starts once the sessions still using the source have ended',
    options: {
      chroot: { type: 'string', alias: 'c', describe: 'the chroot whose source to enter (name or alias)', value: 'CHROOT' },
      user: { type: 'string', alias: 'u', describe: 'run as this user (name or uid, from the host /etc/passwd)', value: 'USER' },
      directory: { type: 'string', alias: 'd', describe: 'working directory inside the source (default: the current one if it exists there, else /)', value: 'DIR' },
      'preserve-environment': preserveEnvironment,
      'recover-stale': {
        type: 'boolean',
        describe:
          'end stale sessions of the chroot first (their upper layers are deleted) instead of failing with exit 7; root, source-root-users= and source-root-groups= only',
      },
      ...lockWait,
    },
    command: true,
    examples: [
      ['warden source -c demo -- sh -c "echo upgraded > /etc/motd"', 'change the source while no session is mounted over it'],
      ['warden source -c demo --timeout 60 -- apt-get -y upgrade', 'give up (exit 5) if sessions still hold it after a minute'],
    ],
  },
  {
    name: 'begin',
    usage: 'warden begin -c CHROOT [--id ID] [--timeout S] [--no-wait] [--json]',
    describe:
      'begin a persistent session held by the supervisor (started in the background if none runs) and print its id; run in it with `warden run -s ID`, end it with `warden end -s ID`',
    options: {
      chroot: { type: 'string', alias: 'c', describe: 'the chroot (name or alias)', value: 'CHROOT' },
      id: { type: 'string', describe: 'id for the session (default: CHROOT-UUID)', value: 'ID' },
      ...lockWait,
      json,
    },
    examples: [['id=$(warden begin -c demo) && warden run -s "$id" -- make && warden end -s "$id"', 'one session for several commands']],
  },
  {
    name: 'end',
    usage: 'warden end (-s ID | --all [-c CHROOT]) [--wait | --force]',
    describe: 'end a session: unmount it and delete its directory',
    options: {
      session: { type: 'string', alias: 's', describe: 'the session', value: 'ID' },
      all: { type: 'boolean', describe: 'every session (that exists now), going on past failures; exit status: the first failure\'s; corrupt entries are reported and left' },
      chroot: { type: 'string', alias: 'c', describe: 'with --all: only the sessions of this chroot (name or alias)', value: 'CHROOT' },
      wait: { type: 'boolean', describe: 'wait for the processes still holding it to exit' },
      force: { type: 'boolean', describe: 'kill the processes still holding it (SIGTERM, then SIGKILL)' },
      timeout: lockWait.timeout!,
    },
    examples: [['warden end --all -c demo --force', 'end every session of demo, killing what still runs in them']],
  },
  {
    name: 'recover',
    usage: 'warden recover (-s ID | --all) [--end] [-u USER] [-d DIR] [-p] [-- CMD...]',
    describe:
      'recover stale sessions (nothing holds them: warden was killed, or the machine rebooted): re-mount and re-adopt them, or with --end end them; with CMD, run it in the recovered session and hold the session while it runs',
    options: {
      session: { type: 'string', alias: 's', describe: 'the stale session', value: 'ID' },
      all: { type: 'boolean', describe: 'every stale session; corrupt ones are reported and left alone, build dirs of dead begins removed' },
      end: { type: 'boolean', describe: 'end the session(s) instead of re-adopting them' },
      user: { type: 'string', alias: 'u', describe: 'run CMD as this user (name or uid, from the host /etc/passwd)', value: 'USER' },
      directory: { type: 'string', alias: 'd', describe: 'working directory of CMD inside the session', value: 'DIR' },
      'preserve-environment': preserveEnvironment,
      ...lockWait,
    },
    command: true,
    examples: [
      ['warden recover -s demo-1234', 're-mount a session left by a reboot; `warden run -s demo-1234 -- CMD` then works'],
      ['warden recover -s demo-1234 -- sh', 'recover it and run a shell in it, holding it meanwhile'],
      ['warden recover --all --end', 'end every stale session'],
    ],
  },
  {
    name: 'list',
    usage: 'warden list [--sessions] [--json]',
    describe: 'list chroots, or with --sessions the sessions and their state (active, stale, corrupt)',
    options: {
      sessions: { type: 'boolean', describe: 'list sessions instead of chroots' },
      json,
    },
  },
  {
    name: 'info',
    usage: 'warden info NAME|ID [--json]',
    describe: 'one chroot or session, with its locks and the pids holding them',
    options: { json },
    positional: ['name'],
  },
  {
    name: 'locks',
    usage: 'warden locks [--json]',
    describe: 'every warden lock on this host (source, manage, session) and who holds or waits for it',
    options: { json },
  },
  {
    name: 'watch',
    usage: 'warden watch [--json]',
    describe: 'stream session events (begun, ended, stale, recovered, corrupt) until interrupted; "watching DIR" goes to stderr once changes are being reported',
    options: { json },
    examples: [['warden watch --json', 'one JSON object per event and line (NDJSON)']],
  },
  {
    name: 'supervise',
    usage: 'warden supervise [--end-sessions-on-exit]',
    describe:
      'run the supervisor of the state dir in the foreground (for systemd; `warden begin` starts one in the background when none runs): it holds persistent sessions, serves begin and end on <state-dir>/supervisor.sock, and re-adopts stale sessions',
    options: {
      'end-sessions-on-exit': { type: 'boolean', describe: 'end the held sessions on SIGTERM instead of leaving them stale for the next supervisor to re-adopt' },
      'ready-fd': { type: 'number', describe: 'write READY and a newline to this fd once serving, then close it (used when the CLI starts a supervisor)', value: 'FD' },
    },
  },
  {
    name: 'forget-host',
    usage: 'warden forget-host -c CHROOT HOST [--json]',
    describe:
      'build farms: forget the registrations of HOST, gone for good, in the shared dir of CHROOT, so that source entries stop waiting for (or refusing) its sessions; refused while any of them is held, and for this host',
    options: {
      chroot: { type: 'string', alias: 'c', describe: 'the shared chroot (name or alias)', value: 'CHROOT' },
      json,
    },
    positional: ['host'],
  },
  {
    name: 'bootstrap',
    usage: 'warden bootstrap DIR [--force]',
    describe: 'build a minimal chroot in DIR from host binaries (busybox, or sh and coreutils), no downloads',
    options: {
      force: { type: 'boolean', describe: 'replace the contents of a non-empty DIR that is not a previous bootstrap' },
      json,
    },
    positional: ['dir'],
  },
];

export function findVerb(name: string): VerbSpec | undefined {
  return VERBS.find((v) => v.name === name);
}
