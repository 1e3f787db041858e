/**
 * The JSON-RPC 2.0 messages a plugin exchanges with lightningd.
 *
 * @module
 */

/** The id that pairs an answer with its request. */
export type JsonRpcId = string | number;

/** A request (with an id) or a notification (without one). */
export interface JsonRpcRequest {
  /** Always `"2.0"`. */
  jsonrpc: "2.0";
  /** Set on a request, which is answered; absent on a notification. */
  id?: JsonRpcId;
  /** The method called, e.g. `db_write`. */
  method: string;
  /** Its parameters, as sent: a list or an object. */
  params?: unknown;
}

/** What the plugin sends lightningd: a result, an error answer, or a notification such as `log`. */
export type JsonRpcOutgoing =
  | { jsonrpc: "2.0"; id: JsonRpcId; result: unknown }
  | { jsonrpc: "2.0"; id: JsonRpcId | null; error: JsonRpcError }
  | { jsonrpc: "2.0"; method: string; params: unknown };

/** An error answer's body, as lightning-cli prints it. */
export interface JsonRpcError {
  /** JSON-RPC's code for the error, or one the method chose. */
  code: number;
  /** What went wrong, in words. */
  message: string;
  /** Anything more the method attached. */
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

/**
 * A request, or what is wrong with a message, with its id and method where they can be read.
 * `literals`: an `init` that held numbers that are not JSON, read as lightningd reads them
 * (see {@linkcode readIntLiterals}): each as written and as read.
 */
export type Parsed =
  | { ok: true; request: JsonRpcRequest; literals?: { written: string; read: number }[] }
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
    const init = salvageInit(text);
    if (init !== undefined) return init;
    // lightningd's parser lets through calls JSON.parse refuses, with the id lightningd wrote
    // (always a string): the caller gets the refusal rather than waiting forever.
    const { id, method } = lightningdsMembers(text);
    const why = `not JSON (${(error as Error).message})`;
    return { ok: false, id: typeof id === "string" ? id : undefined, method, error: why };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, id: undefined, error: "not a JSON object" };
  }
  const twice = refusedTwice(text);
  if (twice !== undefined) return twice;
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

/** The index of the quote that closes the JSON string opening at `start` (`text.length`: none). */
function stringEnd(text: string, start: number): number {
  for (let quote = text.indexOf('"', start + 1);; quote = text.indexOf('"', quote + 1)) {
    if (quote === -1) return text.length;
    let run = 0;
    while (text[quote - 1 - run] === "\\") run++;
    if (run % 2 === 0) return quote;
  }
}

/** The index of the last character of the bare value (number, literal) starting at `start`. */
function bareEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && !" \t\r\n,]}".includes(text[i])) i++;
  return i - 1;
}

/** A JSON string as written, quotes included, decoded; `undefined` when it is none. */
function decoded(written: string): string | undefined {
  try {
    const value = JSON.parse(written);
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The top-level members of the object `text` as lightningd reads them: the first name that,
 * decoded, comes again, and the values of the first members written `"id"` and `"method"`.
 * lightningd reads a caller's request by the first member written `"id"` or `"method"`
 * (json_get_member, which compares the text as written and never checks for a name given
 * twice) and forwards the caller's bytes with only that `id` replaced, while JSON.parse keeps
 * the last member of each decoded name: a caller allowed only `backup-status` could add
 * `"method": "db_write"` or `"m\u0065thod": "shutdown"` and have the plugin run that instead.
 * lightningd's own messages never name a member twice. The scan tokenizes as lightningd's
 * parser (jsmn) does, so that it also finds lightningd's id in a call that parser let through
 * but JSON.parse refuses: a bare value runs to the next whitespace, `,`, `]` or `}`, quotes
 * included. It skips each string with `indexOf`, so a large `db_write` costs little.
 */
function lightningdsMembers(
  text: string,
): { twice?: string; id?: JsonRpcId; method?: string } {
  const names = new Set<string>();
  const read: { twice?: string; id?: JsonRpcId; method?: string } = {};
  let idRead = false;
  let methodRead = false;
  let depth = 0;
  /** At the top, the name of the member whose value comes next, as written. */
  let member: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === " " || c === "\t" || c === "\r" || c === "\n" || c === ":" || c === ",") continue;
    const start = i;
    if (c === '"') i = stringEnd(text, i);
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
    else i = bareEnd(text, i);
    if (member !== undefined) {
      // The value of `member` starts here (all of it, unless it is an object or a list).
      const value = text.slice(start, i + 1);
      if (member === '"id"' && !idRead) {
        idRead = true;
        read.id = c === '"' ? decoded(value) : JSON_NUMBER.test(value) ? Number(value) : undefined;
      }
      if (member === '"method"' && !methodRead) {
        methodRead = true;
        read.method = decoded(value);
      }
      member = undefined;
    } else if (c === '"' && depth === 1) {
      // At the top, a string that is no value is a member's name.
      member = text.slice(start, i + 1);
      const name = decoded(member);
      if (name === undefined) continue;
      // Read on: lightningd's id may come after.
      if (names.has(name)) read.twice ??= name;
      names.add(name);
    }
  }
  return read;
}

/** The refusal of the object `text` holds when it names a top-level member twice. */
function refusedTwice(text: string): Parsed | undefined {
  const { twice, id, method } = lightningdsMembers(text);
  if (twice === undefined) return undefined;
  // The caller chose the name: written as JSON, it stays on one line of lightningd's log.
  return { ok: false, id, method, error: `member ${JSON.stringify(twice)} given twice` };
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

/** What a C `strtol(text, &end, 0)` reads when it reads all of `text`, if that is a safe integer. */
function strtol0(text: string): number | undefined {
  const match = /^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (match === null) return undefined;
  const [, sign, digits] = match;
  const magnitude = /^0[xX]/.test(digits)
    ? parseInt(digits.slice(2), 16)
    : digits.length > 1 && digits[0] === "0"
    ? parseInt(digits.slice(1), 8)
    : Number(digits);
  const value = sign === "-" ? -magnitude : magnitude;
  return Number.isSafeInteger(value) ? value : undefined;
}

const JSON_NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;
const LITERAL_CHAR = /[0-9A-Za-z+\-.]/;

/**
 * `text` with each bare literal that is not JSON but that `strtol(..., 0)` reads whole (`010`,
 * `0x20`, `+2`) replaced by its decimal value, strings left alone; `undefined` when there is
 * none. lightningd checks an `int` plugin option with `strtol(..., 0)` and then writes the
 * config's text into `init` as it is (`json_add_plugin_val` in lightningd/plugin.c), so
 * `backup-compact-ratio=010` in its config makes `init` no JSON.
 */
export function readIntLiterals(
  text: string,
): { text: string; literals: { written: string; read: number }[] } | undefined {
  const literals: { written: string; read: number }[] = [];
  let out = "";
  let from = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
      i++;
    } else if (LITERAL_CHAR.test(c)) {
      const start = i;
      while (i < text.length && LITERAL_CHAR.test(text[i])) i++;
      const written = text.slice(start, i);
      const read = JSON_NUMBER.test(written) ? undefined : strtol0(written);
      if (read !== undefined) {
        out += text.slice(from, start) + String(read);
        from = i;
        literals.push({ written, read });
      }
    } else {
      i++;
    }
  }
  return literals.length === 0 ? undefined : { text: out + text.slice(from), literals };
}

/** An `init` whose only fault is numbers lightningd copied from its config as written. */
function salvageInit(text: string): Parsed | undefined {
  // The scan is only worth it for an init (cheap guard: a malformed db_write may be 30 MB).
  if (!text.includes('"init"')) return undefined;
  const read = readIntLiterals(text);
  if (read === undefined) return undefined;
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(read.text);
  } catch {
    return undefined;
  }
  // lightningd passes such numbers in a caller's request too: read as parseMessage reads.
  const twice = refusedTwice(read.text);
  if (twice !== undefined) return twice;
  if (
    value?.jsonrpc !== "2.0" || value.method !== "init" || !isId(value.id) ||
    typeof value.params !== "object"
  ) return undefined;
  return { ok: true, request: value as unknown as JsonRpcRequest, literals: read.literals };
}
