/**
 * The RPC methods a plugin registers, and the binding of a call's `params` to what a method
 * takes. lightning-cli sends `params` as a list (positional) or, with `-k`, an object
 * (named); a parameter a method does not take is an error, never ignored.
 *
 * @module
 */
import { ErrorCode, RpcError } from "./jsonrpc.ts";

/** One RPC method; `run` may be long and async (the plugin never waits on it to go on). */
export interface RpcMethod {
  /** Its name, as `lightning-cli` calls it. */
  name: string;
  /** lightningd's usage string: the parameters, `[optional]` in brackets. */
  usage: string;
  /** What it does, as lightningd's `help` shows it. */
  description: string;
  /** The parameters it takes, in positional order. */
  params: readonly string[];
  /**
   * Answers a call: its result, or an {@linkcode RpcError} thrown. `signal` aborts when the
   * plugin exits; a long call must then settle promptly.
   */
  run(params: Record<string, unknown>, signal: AbortSignal): unknown;
}

/** The longest `params` a refusal sends back whole, as JSON. */
const ECHO_LIMIT = 1024;

/** What a refusal's `data` says of `params`: them, or, past the limit, only their size. */
function echo(params: unknown): { params: unknown } | { params_bytes: number } {
  // A caller's call of 50 MB is not sent back whole, nor logged so by lightningd.
  const bytes = new TextEncoder().encode(JSON.stringify(params) ?? "").length;
  return bytes <= ECHO_LIMIT ? { params } : { params_bytes: bytes };
}

/** `params` as named values; throws an {@linkcode RpcError} naming what is wrong. */
export function bindParams(method: RpcMethod, params: unknown): Record<string, unknown> {
  const takes = method.params.length === 0
    ? "it takes no parameters"
    : `it takes ${method.params.map((p) => `"${p}"`).join(", ")}`;
  const refuse = (what: string) =>
    new RpcError(
      ErrorCode.InvalidParams,
      `Cannot run ${method.name}: ${what}; ${takes}`,
      echo(params),
    );
  if (params === undefined || params === null) return {};
  if (Array.isArray(params)) {
    if (params.length > method.params.length) {
      throw refuse(`${params.length} parameter${params.length === 1 ? "" : "s"} given`);
    }
    return Object.fromEntries(params.map((value, i) => [method.params[i], value]));
  }
  if (typeof params !== "object") throw refuse("params must be a list or an object");
  const unknown = Object.keys(params).filter((name) => !method.params.includes(name));
  if (unknown.length > 0) {
    throw refuse(`no parameter ${unknown.map((name) => `"${name}"`).join(", ")}`);
  }
  return params as Record<string, unknown>;
}
