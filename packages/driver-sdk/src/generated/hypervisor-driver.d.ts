/// <reference path="./interfaces/virtkit-driver-driver.d.ts" />
/// <reference path="./interfaces/virtkit-driver-effects.d.ts" />
/// <reference path="./interfaces/virtkit-driver-host.d.ts" />
/// <reference path="./interfaces/virtkit-driver-types.d.ts" />
declare module 'virtkit:driver/hypervisor-driver@0.3.0' {
  export type * as VirtkitDriverEffects030 from 'virtkit:driver/effects@0.3.0'; // import virtkit:driver/effects@0.3.0
  export type * as VirtkitDriverHost030 from 'virtkit:driver/host@0.3.0'; // import virtkit:driver/host@0.3.0
  export type * as VirtkitDriverTypes030 from 'virtkit:driver/types@0.3.0'; // import virtkit:driver/types@0.3.0
  export * as driver from 'virtkit:driver/driver@0.3.0'; // export virtkit:driver/driver@0.3.0
}
