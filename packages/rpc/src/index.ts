export type { RpcChannel } from './channel.js';
export {
  CANCEL_FEATURE,
  decodeFrame,
  decodeValue,
  encodeValue,
  FEATURES,
  PROGRESS_FEATURE,
  PROTOCOL_VERSIONS,
  sendMessage,
  SUBSCRIBE_EVENTS,
  type Abort,
  type Call,
  type Cancel,
  type ClientMessage,
  type ErrorReply,
  type EventMessage,
  type Hello,
  type Message,
  type Ping,
  type Pong,
  type Progress,
  type Refuse,
  type Result,
  type ServerMessage,
  type Welcome,
} from './protocol.js';
export { DEFAULT_MAX_CALLS_IN_FLIGHT, METHOD_NAMES, serveConnection, ServedCall, type ServeOptions } from './server.js';
export { MAX_STREAMS_PER_SESSION, STREAM_CHUNK_BYTES, STREAM_WINDOW_BYTES, STREAMS_FEATURE, type AckFrame, type CloseFrame, type DataFrame, type EndFrame, type StreamFrame } from './stream.js';
export { DEFAULT_KEEPALIVE_MS, openRemote, RemoteConnection, RemoteStream, type RemoteOptions } from './client.js';
export { connect, connectRemote, DEFAULT_DAEMON_PORT, defaultUnixSocket, nodeUriOf, type ConnectRemoteOptions } from './remote.js';
