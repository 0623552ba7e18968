// A path with a newline or other control character would break the one-line
// message; show such paths JSON-quoted.
export function showPath(path: string): string {
  return /[\x00-\x1f\x7f]/.test(path) ? JSON.stringify(path) : path;
}
