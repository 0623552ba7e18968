// The requests of the JSON-lines socket (connection.ts reads them): each
// started in its own turn of the event loop, tracked while in flight so a
// stop can cancel its waits, and answered with one reply (or an error).
import type { Credentials } from '../config/index.js';
import { SupervisorStoppingError } from './errors.js';
import { handleRequest } from './handlers.js';
import { parseRequest, ProtocolError, PROTOCOL_VERSION, wireError, type Reply, type Request } from './protocol.js';
import type { InFlight, SupervisorState } from './state.js';

export class Requests {
  readonly #s: SupervisorState;
  /** Requests waiting for their turn to start (see turn()). */
  readonly #starts: (() => void)[] = [];

  constructor(s: SupervisorState) {
    this.#s = s;
  }

  /**
   * Resolves in a later turn of the event loop than any request started
   * before it. A request runs synchronously up to its first real wait, and
   * the steps of an end (unmount, reading mountinfo, removing the dir,
   * fsync) are all synchronous: a burst of 100 requests read in one poll
   * phase would otherwise run back to back for a second, with no timer or
   * client served in between. Started one per turn, each costs the loop at
   * most its own first stretch (~10 ms).
   */
  turn(): Promise<void> {
    return new Promise((resolve) => {
      this.#starts.push(resolve);
      if (this.#starts.length === 1) setImmediate(() => this.#startNext());
    });
  }

  #startNext(): void {
    const next = this.#starts.shift();
    next?.();
    // Queued from inside a check-phase callback: runs in the next iteration, after timers and I/O.
    if (this.#starts.length > 0) setImmediate(() => this.#startNext());
  }

  /** Serves one request line; never throws (every failure becomes an error reply). */
  async serve(line: string, send: (r: Reply) => void, gone: AbortSignal, hungUp: () => boolean, who: Credentials | Error): Promise<void> {
    const s = this.#s;
    let req: Request;
    try {
      req = parseRequest(line);
    } catch (e) {
      const tag = e instanceof ProtocolError ? e.tag : undefined;
      send({ v: PROTOCOL_VERSION, ...(tag === undefined ? {} : { tag }), ok: false, error: wireError(e) });
      return;
    }
    const tag = req.tag === undefined ? {} : { tag: req.tag };
    if (s.stopping) {
      send({ v: PROTOCOL_VERSION, ...tag, ok: false, error: wireError(new SupervisorStoppingError()) });
      return;
    }
    const abort = new AbortController();
    const onGone = () => abort.abort(gone.reason);
    gone.addEventListener('abort', onGone, { once: true });
    if (gone.aborted) abort.abort(gone.reason);
    let finish!: () => void;
    const f: InFlight = { abort, done: new Promise<void>((resolve) => (finish = resolve)) };
    s.inFlight.add(f);
    try {
      if (who instanceof Error) throw who;
      const result = await handleRequest(s, req, who, abort.signal, hungUp, (wait) => send({ v: PROTOCOL_VERSION, ...tag, wait }));
      send({ v: PROTOCOL_VERSION, ...tag, ok: true, result });
    } catch (e) {
      send({ v: PROTOCOL_VERSION, ...tag, ok: false, error: wireError(e) });
    } finally {
      gone.removeEventListener('abort', onGone);
      s.inFlight.delete(f);
      finish();
    }
  }
}
