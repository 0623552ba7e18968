// The supervisor's files in the state dir (DESIGN.md, "Files").
export { SUPERVISOR_LOCK_FILE as SUPERVISOR_LOCK } from '../sessions/index.js';
export const SUPERVISOR_SOCKET = 'supervisor.sock';
export const SUPERVISOR_LOG = 'supervisor.log';
