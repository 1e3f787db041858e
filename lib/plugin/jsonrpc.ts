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
  | { jsonrpc: "2.0"; id: JsonRpcId | null; error: JsonRpcError }
  | { jsonrpc: "2.0"; method: string; params: unknown };

/** An error answer's body, as lightning-cli prints it. */
export interface JsonRpcError {
  code: number;
  message: string;
  data?: unknown;
}

/** Thrown by a method to answer its call with this error. */
export class RpcError extends Error {
  constructor(readonly code: number, message: string, readonly data?: unknown) {
    super(message);
  }

  toJSON(): JsonRpcError {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

export const ErrorCode = {
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
} as const;

/** Levels lightningd's `log` notification knows. */
export type LogLevel = "debug" | "info" | "unusual" | "broken";

const strict = new TextDecoder("utf-8", { fatal: true });
const lenient = new TextDecoder();

/** A request, or what is wrong with a message, with its id and method where they can be read. */
export type Parsed =
  | { ok: true; request: JsonRpcRequest }
  | { ok: false; id: JsonRpcId | undefined; method?: string; error: string };

function isId(value: unknown): value is JsonRpcId {
  return typeof value === "string" || typeof value === "number";
}

/**
 * Parses one framed message; says what is wrong with it when it is not a request. Its bytes
 * must be UTF-8: a string read with replacement characters would not be what was sent.
 */
export function parseMessage(bytes: Uint8Array): Parsed {
  // The lenient decoder is several times faster; a U+FFFD it returns is either in the bytes
  // or stands for bytes that are not UTF-8, and only then does the strict one tell which.
  const text = lenient.decode(bytes);
  if (text.includes("\uFFFD") && !isUtf8(bytes)) return notUtf8(text);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, id: undefined, error: `not JSON (${(error as Error).message})` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, id: undefined, error: "not a JSON object" };
  }
  const message = value as Record<string, unknown>;
  const id = isId(message.id) ? message.id : undefined;
  if (typeof message.method !== "string") return { ok: false, id, error: "no method" };
  const method = message.method;
  if (message.jsonrpc !== "2.0") return { ok: false, id, method, error: 'no "jsonrpc": "2.0"' };
  if (message.id !== undefined && id === undefined) {
    return { ok: false, id: undefined, method, error: "id is neither string nor number" };
  }
  return { ok: true, request: message as unknown as JsonRpcRequest };
}

function isUtf8(bytes: Uint8Array): boolean {
  try {
    strict.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** A message whose bytes are not UTF-8: its id and method, when the lenient read finds them. */
function notUtf8(text: string): Parsed {
  const error = "not valid UTF-8";
  try {
    const value = JSON.parse(text);
    const id = isId(value?.id) ? value.id : undefined;
    const method = typeof value?.method === "string" ? value.method : undefined;
    return { ok: false, id, method, error };
  } catch {
    return { ok: false, id: undefined, error };
  }
}
