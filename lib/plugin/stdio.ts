/**
 * Serves a {@linkcode BackupPlugin} over a byte stream pair: lightningd's pipe to the
 * plugin's stdin, and the plugin's stdout, which carries nothing but JSON-RPC.
 *
 * @module
 */
import { BackupPlugin } from "./backup_plugin.ts";
import { MessageFramer } from "./framing.ts";
import { type JsonRpcOutgoing, parseMessage } from "./jsonrpc.ts";

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
 * Reads messages until `shutdown` or end of input and hands each to the plugin in order. A
 * `db_write` is answered before the next message is read (lightningd waits for it anyway);
 * a method call only starts, so hooks that come while it runs are answered at once.
 */
export async function serve(
  plugin: BackupPlugin,
  streams: PluginStreams,
  now: () => number,
): Promise<void> {
  const framer = new MessageFramer((bytes) =>
    plugin.log("unusual", `ignoring ${bytes} bytes between messages: not a JSON-RPC message`)
  );
  const buffer = new Uint8Array(1 << 20);
  for (;;) {
    const n = await streams.read(buffer);
    if (n === null) {
      const partial = framer.end();
      if (partial > 0) plugin.log("unusual", `input ended inside a message (${partial} bytes)`);
      return;
    }
    const receivedAt = now();
    // The messages may be views of `buffer`: each is parsed before the next read.
    for (const bytes of framer.push(buffer.subarray(0, n))) {
      const parsed = parseMessage(bytes);
      if (!parsed.ok) plugin.malformed(parsed, bytes.length);
      else {
        if (parsed.literals) plugin.readLiterals(parsed.request.method, parsed.literals);
        if (await plugin.handle(parsed.request, receivedAt)) return;
      }
    }
  }
}
