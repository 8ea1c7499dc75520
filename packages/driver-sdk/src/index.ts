// @virtkit/driver-sdk, host side: the build step. Driver code imports '@virtkit/driver-sdk/guest'.
export { buildDriver, witDir, type BuildOptions } from './build.js';
