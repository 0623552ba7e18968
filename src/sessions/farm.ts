// What the CLI's listings read of a shared chroot (build farms): its
// registrations, loaded only when a shared chroot is configured.
export { sharedOf } from './shared.js';
export { registrations } from './source-farm.js';
