/** @module Interface virtkit:transport/transport@0.1.0 **/
/**
 * `endpoint`: "HOST:PORT" for TLS, an absolute socket path for unix; `options`: the
 * transport's own settings as JSON (certificate paths, timeouts, maximum frame size).
 */
export function listen(endpoint: string, options: string): Listener;
export function connect(endpoint: string, options: string): Channel;
export type Channel = import('./virtkit-transport-types.js').Channel;
export type Listener = import('./virtkit-transport-types.js').Listener;
export type CloseReason = import('./virtkit-transport-types.js').CloseReason;
