// @virtkit/core: the public API.
export { connect, Connection, type ConnectOptions, type DomainSummary, type Capabilities, type DomainConnection } from './connection/connection.js';
export { parseUri, type ParsedUri } from './connection/uri.js';
export type { ExecOptions, ExecResult } from './connection/exec.js';
export { Host, defaultHost, defaultRoots, TOKENS, type HostOptions, type LoadedPlugin, type PluginSummary } from './host.js';
export { VirtkitError, ErrorCodes, type ErrorCode, type FieldError } from './errors.js';
export { ConfigValidator, domainSchema, type DomainConfig } from './config/validate.js';
export { loadHostConfig, defaultHostConfigPath, type HostConfigFile } from './config/host-config.js';
export { HOST_WORLD, HOST_WORLD_ID, discoverPlugins, checkWorld, type PluginManifest, type PluginPackage } from './plugins/manifest.js';
export { DEFAULT_POLICY, type GrantPolicy, type PolicyEntry } from './plugins/policy.js';
export type { GrantSpec, Grants } from './plugins/grants.js';
export { FileStore } from './store/file-store.js';
export { MemoryStore } from './store/memory-store.js';
export type { StateStore } from './store/store.js';
export type { JobInfo, JobOptions } from './jobs/jobs.js';
export * from './types.js';
