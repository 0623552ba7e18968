// `warden bootstrap DIR`: a minimal chroot from host binaries (demo, tests).
export { bootstrapChroot } from '../../bootstrap/index.js';
