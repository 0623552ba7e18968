// koffi, loaded through require(). koffi is a CommonJS package; importing
// it from ESM makes Node scan its large entry file for named exports first,
// which measured ~30 ms against ~10 ms for require() on this machine, and
// every CLI call that touches a lock pays it.
import { createRequire } from 'node:module';

const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
export default koffi;
