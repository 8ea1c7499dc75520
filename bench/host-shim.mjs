// Stands in for the component's only import, virtkit:driver/host, when the spin driver
// runs as plain JS in-process.
export function log() {}
