import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Default state root (DESIGN §3 "On disk"): /var/lib/hostpull for root, else
 * $XDG_DATA_HOME/hostpull (~/.local/share/hostpull).
 */
export function defaultRoot(): string {
  if (process.env.HOSTPULL_ROOT) return process.env.HOSTPULL_ROOT;
  if (process.getuid?.() === 0) return '/var/lib/hostpull';
  const xdg = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(xdg, 'hostpull');
}
