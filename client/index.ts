// The package's ./client entry: `import { Client, GafferError } from "gaffer/client"` (API.md §10).
export { Client, MAX_WAIT_STEP_S } from "./client.js";
export {
  CredentialsRefusedError,
  GafferConnectionError,
  GafferError,
  GafferWaitTimeoutError,
  NoCredentialsError,
  type FieldError,
  type ProblemDocument,
} from "./errors.js";
export type { Breaker, CachedToken, ClientLog, ClientOptions, RequestOptions, TokenCache } from "./transport.js";
export type { BackoffParams } from "./backoff.js";
export type * from "./types.js";
