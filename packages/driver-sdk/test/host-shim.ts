// Test-only stand-in (a fake) for the component model's `virtkit:driver/host` import, so
// driver code can run in-process under vitest through @virtkit/driver-sdk/testing.
export const logged: Array<[string, string]> = [];
export function log(level: string, message: string): void {
  logged.push([level, message]);
}
