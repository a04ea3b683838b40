/**
 * `@softquantus/qcos`: a client of the QCOS REST API, on Node's own `fetch`.
 *
 * ```ts
 * import { Client } from "@softquantus/qcos";
 * const client = new Client();   // QCOS_URL and QCOS_API_KEY from the environment
 * ```
 */
export { Client, DEFAULT_BASE_URL } from "./client.js";
export type { BatchWaitOptions, ClientOptions, WaitOptions } from "./client.js";
export * from "./errors.js";
export type * from "./types.js";
