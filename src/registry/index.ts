/**
 * The OCI distribution client: auth, one retry policy, Range resume, digest and size checks, push.
 * RegistryReader is the part a pull needs (and a test fakes).
 */
export { RegistryClient, type RegistryClientOptions, type RegistryReader, type RepositoryRef, type RequestOptions as RegistryRequestOptions } from './client.js';
export { isRegistryError, RegistryError } from './errors.js';
export { DEFAULT_BACKOFF, isRetryable, retryLeftMs, retryMessage, type RetryBudget, type RetryNotice } from './retry.js';
export { registryOrigin } from './scheme.js';
export { authFileSearchPath, fileWithCredential, primaryAuthFile, removeCredential, storeCredential } from './auth/auth-files.js';
export { normaliseRegistryKey, splitRegistryKey, staticCredentials } from './auth/credentials.js';
