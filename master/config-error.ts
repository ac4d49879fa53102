// A refused configuration, apart from config.ts so that the command line can tell it from
// other errors without loading zod and the settings' schema (a remote command never reads them).
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}
