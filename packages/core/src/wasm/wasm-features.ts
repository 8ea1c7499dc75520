// QuickJS components use Wasm extended-const. Node 20's V8 keeps it behind a flag; Node 22+
// has it on and rejects the flag as unknown (printing to stderr). So: ask V8 whether a module
// with an extended constant expression validates, and set the flag only when it does not.
import { setFlagsFromString } from 'node:v8';

/** (module (global i32 (i32.add (i32.const 1) (i32.const 2)))) */
const EXTENDED_CONST_PROBE = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x06, 0x09, 0x01, 0x7f, 0x00, 0x41, 0x01, 0x41, 0x02, 0x6a, 0x0b]);

/** Makes Wasm extended-const available to what this process compiles next. */
export function enableWasmExtendedConst(): void {
  if (!WebAssembly.validate(EXTENDED_CONST_PROBE)) setFlagsFromString('--experimental-wasm-extended-const');
}
