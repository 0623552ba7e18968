// Undo list for a multi-step operation (STYLE.md 7): each completed step
// registers how to take it back; on failure they run newest first, every
// one of them even when an earlier undo fails, and the failures are
// collected rather than thrown halfway.
export class Undo {
  #steps: { what: string; fn: () => void | Promise<void> }[] = [];

  push(what: string, fn: () => void | Promise<void>): void {
    this.#steps.push({ what, fn });
  }

  /** Forgets everything: the operation succeeded and now owns its results. */
  commit(): void {
    this.#steps = [];
  }

  /** Runs every undo step, newest first; returns the errors, each prefixed with its step. */
  async run(): Promise<Error[]> {
    const errors: Error[] = [];
    for (const step of this.#steps.reverse()) {
      try {
        await step.fn();
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        errors.push(Object.assign(new Error(`${step.what}: ${err.message}`, { cause: err }), { step: step.what }));
      }
    }
    this.#steps = [];
    return errors;
  }
}
