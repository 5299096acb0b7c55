/**
 * Runs without root: a user and mount namespace helper and the check that it can work here.
 */
export { checkRootless } from './check-rootless.js';
export { runInUserNamespace } from './run-in-namespace.js';
