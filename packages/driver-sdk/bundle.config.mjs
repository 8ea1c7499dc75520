// Rolldown settings merged into jco's bundle of a driver: virtkit's WIT interfaces are
// provided by the component model, not by a module on disk.
export default { external: [/^virtkit:/] };
