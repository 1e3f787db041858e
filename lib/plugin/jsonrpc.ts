/**
 * The JSON-RPC 2.0 messages a plugin exchanges with lightningd.
 *
 * @module
 */

export type JsonRpcId = string | number;

/** A request (with an id) or a notification (without one). */
export interface JsonRpcRequest {
  jsonrpc: "2.0";
  id?: JsonRpcId;
  method: string;
  params?: unknown;
}

export type JsonRpcOutgoing =
  | { jsonrpc: "2.0"; id: JsonRpcId; result: unknown }
  | { jsonrpc: "2.0"; id: JsonRpcId | null; error: { code: number; message: string } }
  | { jsonrpc: "2.0"; method: string; params: unknown };

export const ErrorCode = {
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
} as const;

/** Levels lightningd's `log` notification knows. */
export type LogLevel = "debug" | "info" | "unusual" | "broken";

const decoder = new TextDecoder();

export type Parsed =
  | { ok: true; request: JsonRpcRequest }
  | { ok: false; id: JsonRpcId | undefined; error: string };

function isId(value: unknown): value is JsonRpcId {
  return typeof value === "string" || typeof value === "number";
}

/** Parses one framed message; says what is wrong with it when it is not a request. */
export function parseMessage(bytes: Uint8Array): Parsed {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    return { ok: false, id: undefined, error: `not JSON (${(error as Error).message})` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, id: undefined, error: "not a JSON object" };
  }
  const message = value as Record<string, unknown>;
  const id = isId(message.id) ? message.id : undefined;
  if (message.jsonrpc !== "2.0") return { ok: false, id, error: 'no "jsonrpc": "2.0"' };
  if (typeof message.method !== "string") return { ok: false, id, error: "no method" };
  if (message.id !== undefined && id === undefined) {
    return { ok: false, id: undefined, error: "id is neither string nor number" };
  }
  return { ok: true, request: message as unknown as JsonRpcRequest };
}
