// world virtkit:transport/transport-provider@0.1.0
export type * as VirtkitTransportTypes010 from './interfaces/virtkit-transport-types.js'; // import virtkit:transport/types@0.1.0
export * as transport from './interfaces/virtkit-transport-transport.js'; // export virtkit:transport/transport@0.1.0
