// Runs inside a piscina worker thread: the rest of a big removal, off the
// caller's event loop (removeTreeOffThread in remove.ts).
import { removeInWorker } from './remove.js';

export default removeInWorker;
