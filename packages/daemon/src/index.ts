// @virtkit/daemon: virtkitd as a library (the command is bin/virtkitd.js).
export { DEFAULT_PORT, defaultConfigPath, defaultPkiDir, loadDaemonConfig, parseDaemonConfig, ROLES, type DaemonConfig, type IdentityRule, type Role } from './config.js';
export { Daemon, DAEMON_DIR } from './daemon.js';
export { jsonLogger, type Level, type Logger } from './log.js';
export { authorizer, describePeer, globToRegExp, permissionOf, ruleFor, type Permission } from './policy.js';
export { main } from './main.js';
