/**
 * Serves a {@linkcode BackupPlugin} over a byte stream pair: lightningd's pipe to the
 * plugin's stdin, and the plugin's stdout, which carries nothing but JSON-RPC.
 *
 * @module
 */
import { BackupPlugin } from "./backup_plugin.ts";
import { MessageFramer } from "./framing.ts";
import { type JsonRpcOutgoing, parseMessage } from "./jsonrpc.ts";
import { StoppingError, unlessStopping } from "../backends/stopping.ts";

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
 * The plugin's input, read ahead of the message being handled: a `db_write` holds the serve
 * loop until it is answered, and the end of input (lightningd gone) must be seen meanwhile.
 * Each chunk is a copy, so that reading on never overwrites one still being parsed.
 */
class Input {
  readonly #chunks: Uint8Array[] = [];
  #end: { error?: unknown } | undefined;
  #wake: (() => void) | undefined;
  readonly #ended = new AbortController();
  /**
   * Aborts once the input ends (or fails): what a message's handling is raced against. A
   * signal, whose listener each race removes when it settles, not one long-lived promise:
   * every `Promise.race` with one leaves a reaction on it, ~300 bytes per `db_write`.
   */
  readonly ended: AbortSignal = this.#ended.signal;

  constructor(streams: PluginStreams) {
    this.#pump(streams);
  }

  async #pump(streams: PluginStreams): Promise<void> {
    const buffer = new Uint8Array(1 << 20);
    try {
      for (;;) {
        const n = await streams.read(buffer);
        if (n === null) break;
        this.#chunks.push(buffer.slice(0, n));
        this.#wake?.();
      }
      this.#end = {};
    } catch (error) {
      this.#end = { error };
    }
    this.#wake?.();
    this.#ended.abort();
  }

  /** The next chunk, `null` at end of input; throws what the read threw. */
  async next(): Promise<Uint8Array | null> {
    while (this.#chunks.length === 0) {
      if (this.#end?.error !== undefined) throw this.#end.error;
      if (this.#end) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    return this.#chunks.shift()!;
  }
}

/**
 * Reads messages until `shutdown` or end of input and hands each to the plugin in order. A
 * `db_write` is answered before the next message is handled (lightningd waits for it anyway),
 * unless the input ends first: then serve returns at once, and the plugin's close ends the
 * wait. A method call only starts, so hooks that come while it runs are answered at once.
 */
export async function serve(
  plugin: BackupPlugin,
  streams: PluginStreams,
  now: () => number,
): Promise<void> {
  const framer = new MessageFramer((bytes) =>
    plugin.log("unusual", `ignoring ${bytes} bytes between messages: not a JSON-RPC message`)
  );
  const input = new Input(streams);
  for (;;) {
    const chunk = await input.next();
    if (chunk === null) {
      const partial = framer.end();
      if (partial > 0) plugin.log("unusual", `input ended inside a message (${partial} bytes)`);
      return;
    }
    const receivedAt = now();
    for (const bytes of framer.push(chunk)) {
      const parsed = parseMessage(bytes);
      if (!parsed.ok) plugin.malformed(parsed, bytes.length);
      else {
        if (parsed.literals) plugin.readLiterals(parsed.request.method, parsed.literals);
        let exit: boolean;
        try {
          exit = await unlessStopping(plugin.handle(parsed.request, receivedAt), input.ended);
        } catch (error) {
          // The input ended first: the plugin's close ends the wait for that change.
          if (error instanceof StoppingError) return;
          throw error;
        }
        if (exit) return;
      }
    }
  }
}
