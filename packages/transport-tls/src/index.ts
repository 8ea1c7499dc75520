export {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  FRAME_FORMAT_VERSION,
  FRAME_HEADER_BYTES,
  FrameError,
  type FrameErrorCode,
  FrameReader,
  type FrameReaderOptions,
} from './framing.js';
export {
  type Channel,
  ChannelClosedError,
  type ChannelOptions,
  type CloseReason,
  DEFAULT_IDLE_TIMEOUT_MS,
  type PeerIdentity,
  TlsChannel,
} from './channel.js';
export {
  connect,
  type ConnectOptions,
  type ChannelTuning,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  listen,
  type Listener,
  type ListenOptions,
  type Pem,
  type TlsCredentials,
  TransportError,
} from './tls.js';
