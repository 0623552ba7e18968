// The supervisor's files in the state dir (DESIGN.md, "Files").
export const SUPERVISOR_LOCK = 'supervisor.lock';
export const SUPERVISOR_SOCKET = 'supervisor.sock';
export const SUPERVISOR_LOG = 'supervisor.log';
