// The benchmark's driver: `info` yields `args.steps` trivial clock effects, then returns.
// Built twice by run.mjs: as a Wasm component (bench/dist/spin.wasm, the real thing) and as
// plain JS bundled in-process (bench/dist/spin-plain.mjs), to price the component boundary.
// Imported by relative path: bench/ is not a package, so the SDK is not resolvable by name.
import { defineDriver, fx } from '../packages/driver-sdk/src/guest.ts';

export const driver = defineDriver({
  name: 'spin',
  version: '0.0.0',
  uriSchemes: ['spin'],
  operations: {
    *info(ctx) {
      const steps = Number(ctx.args.steps ?? 0);
      let last = 0;
      for (let i = 0; i < steps; i++) last = Number((yield* fx.clock()).monotonicNs);
      return { payload: { steps, last } };
    },
  },
});
