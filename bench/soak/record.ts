// What the soak counts: operations completed, failures by exit code, kills
// injected, and every broken invariant with when and what.

/** The invariants the soak checks; each gets a row, so a clean run shows its zeros. */
export const INVARIANTS = [
  'source changed under a mounted overlay',
  'session write reached the source',
  'corrupt session directory',
  'lock of a dead process',
  'flock(2) lock on a warden file',
  'mount without a session directory',
  'supervisor growth',
  'unexpected CLI failure',
  'wrong command output',
  'source counter lost a write',
] as const;

export type Invariant = (typeof INVARIANTS)[number];

export interface Violation {
  /** ISO time. */
  at: string;
  /** Seconds since the load started. */
  t: number;
  invariant: Invariant;
  details: string;
}

export class Recorder {
  readonly #start = Date.now();
  readonly ops = new Map<string, number>();
  readonly failures = new Map<string, number>();
  readonly kills = new Map<string, number>();
  readonly violations: Violation[] = [];
  /** Failures of the soak's own machinery (a checker round that threw): a run with any is not clean. */
  readonly errors: string[] = [];
  /** The last few stderr lines of failures, by failure key: what a reader of the results needs to judge them. */
  readonly samples = new Map<string, string[]>();

  get elapsedS(): number {
    return (Date.now() - this.#start) / 1000;
  }

  op(kind: string): void {
    bump(this.ops, kind);
  }

  failure(key: string, stderrTail: string): void {
    bump(this.failures, key);
    const list = this.samples.get(key) ?? [];
    if (list.length < 3 && stderrTail && !list.includes(stderrTail)) list.push(stderrTail);
    this.samples.set(key, list);
  }

  kill(target: string): void {
    bump(this.kills, target);
  }

  violation(invariant: Invariant, details: string): void {
    const v = { at: new Date().toISOString(), t: Math.round(this.elapsedS * 10) / 10, invariant, details };
    this.violations.push(v);
    console.error(`[soak ${v.t.toFixed(1)} s] VIOLATION ${invariant}: ${details}`);
  }

  error(what: string, e: unknown): void {
    const line = `${what}: ${e instanceof Error ? e.message : String(e)}`;
    this.errors.push(line);
    console.error(`[soak ${this.elapsedS.toFixed(1)} s] ERROR ${line}`);
  }
}

function bump(m: Map<string, number>, key: string): void {
  m.set(key, (m.get(key) ?? 0) + 1);
}
