/**
 * Serves a {@linkcode BackupPlugin} over a byte stream pair: lightningd's pipe to the
 * plugin's stdin, and the plugin's stdout, which carries nothing but JSON-RPC.
 *
 * @module
 */
import { BackupPlugin } from "./backup_plugin.ts";
import { MessageFramer } from "./framing.ts";
import { ErrorCode, type JsonRpcOutgoing, parseMessage } from "./jsonrpc.ts";

/** The plugin's two pipes; tests and benchmarks hand in others. */
export interface PluginStreams {
  /** Reads into the buffer; `null` at end of input. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes all bytes before returning. */
  writeSync(bytes: Uint8Array): void;
}

const encoder = new TextEncoder();

/** Encodes one outgoing message as lightningd frames them. */
export function frame(message: JsonRpcOutgoing): Uint8Array {
  return encoder.encode(JSON.stringify(message) + "\n\n");
}

export function writeTo(streams: PluginStreams): (message: JsonRpcOutgoing) => void {
  return (message) => streams.writeSync(frame(message));
}

/**
 * Reads messages until `shutdown` or end of input and hands each to the plugin, one at a
 * time (lightningd waits for each `db_write` answer before it sends more writes).
 */
export async function serve(
  plugin: BackupPlugin,
  streams: PluginStreams,
  now: () => number,
): Promise<void> {
  const framer = new MessageFramer();
  const buffer = new Uint8Array(1 << 20);
  for (;;) {
    const n = await streams.read(buffer);
    if (n === null) {
      if (framer.pendingBytes > 0) {
        plugin.log("unusual", `input ended inside a message (${framer.pendingBytes} bytes)`);
      }
      return;
    }
    const receivedAt = now();
    for (const bytes of framer.push(buffer.slice(0, n))) {
      const parsed = parseMessage(bytes);
      if (!parsed.ok) {
        plugin.log(
          "unusual",
          `ignoring a malformed message of ${bytes.length} bytes: ${parsed.error}`,
        );
        if (parsed.id !== undefined) {
          plugin.error(parsed.id, ErrorCode.InvalidRequest, `Invalid request: ${parsed.error}`);
        }
        continue;
      }
      if (await plugin.handle(parsed.request, receivedAt)) return;
    }
  }
}
