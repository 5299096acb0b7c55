/**
 * Where `hostpull serve` listens by default: loopback, since exposing the server is a decision;
 * port 5055, since 5000 is the CNCF registry's default (and macOS AirPlay's) and a hostpull server
 * often runs next to a registry. A file of its own so `--help` need not load the server.
 */
export const DEFAULT_PORT = 5055;
export const DEFAULT_HOST = '127.0.0.1';
