export type { RpcChannel } from './channel.js';
export {
  decodeValue,
  encodeValue,
  FEATURES,
  PROTOCOL_VERSIONS,
  SUBSCRIBE_EVENTS,
  type Call,
  type ClientMessage,
  type ErrorReply,
  type EventMessage,
  type Hello,
  type Message,
  type Ping,
  type Pong,
  type Refuse,
  type Result,
  type ServerMessage,
  type Welcome,
} from './protocol.js';
export { METHOD_NAMES, serveConnection, type ServeOptions } from './server.js';
export { DEFAULT_KEEPALIVE_MS, openRemote, RemoteConnection, type RemoteOptions } from './client.js';
export { connectRemote, DEFAULT_DAEMON_PORT, defaultUnixSocket, nodeUriOf, type ConnectRemoteOptions } from './remote.js';
