// world virtkit:driver/hypervisor-driver@0.3.0
import type * as VirtkitDriverEffects from './interfaces/virtkit-driver-effects.js'; // virtkit:driver/effects@0.3.0
import type * as VirtkitDriverHost from './interfaces/virtkit-driver-host.js'; // virtkit:driver/host@0.3.0
import type * as VirtkitDriverTypes from './interfaces/virtkit-driver-types.js'; // virtkit:driver/types@0.3.0
import type * as VirtkitDriverDriver from './interfaces/virtkit-driver-driver.js'; // virtkit:driver/driver@0.3.0
export interface ImportObject {
  'virtkit:driver/effects@0.3.0': typeof VirtkitDriverEffects,
  'virtkit:driver/host@0.3.0': typeof VirtkitDriverHost,
  'virtkit:driver/types@0.3.0': typeof VirtkitDriverTypes,
}
export interface HypervisorDriver {
  'virtkit:driver/driver@0.3.0': typeof VirtkitDriverDriver,
  driver: typeof VirtkitDriverDriver,
}

/**
* Instantiates this component with the provided imports and
* returns a map of all the exports of the component.
*
* This function is intended to be similar to the
* `WebAssembly.Instantiate` constructor. The second `imports`
* argument is the "import object" for wasm, except here it
* uses component-model-layer types instead of core wasm
* integers/numbers/etc.
*
* The first argument to this function, `getCoreModule`, is
* used to compile core wasm modules within the component.
* Components are composed of core wasm modules and this callback
* will be invoked per core wasm module. The caller of this
* function is responsible for reading the core wasm module
* identified by `path` and returning its compiled
* `WebAssembly.Module` object. This would use the
* `WebAssembly.Module` constructor on the web, for example.
*/
export function instantiate(
getCoreModule: (path: string) => WebAssembly.Module,
imports: ImportObject,
instantiateCore?: (module: WebAssembly.Module, imports: Record<string, any>) => WebAssembly.Instance
): HypervisorDriver;
export function instantiate(
getCoreModule: (path: string) => WebAssembly.Module | Promise<WebAssembly.Module>,
imports: ImportObject,
instantiateCore?: (module: WebAssembly.Module, imports: Record<string, any>) => WebAssembly.Instance | Promise<WebAssembly.Instance>
): HypervisorDriver | Promise<HypervisorDriver>;

