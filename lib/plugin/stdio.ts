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
 * The plugin's input, read ahead of the message being handled: a `db_write` holds the serve
 * loop until it is answered, and the end of input (lightningd gone) must be seen meanwhile.
 * Each chunk is a copy, so that reading on never overwrites one still being parsed.
 */
class Input {
  readonly #chunks: Uint8Array[] = [];
  #end: { error?: unknown } | undefined;
  #wake: (() => void) | undefined;
  /**
   * Called once when the input ends (or fails). A callback, not a promise raced against each
   * message's handling: every `Promise.race` with one long-lived promise leaves a reaction on
   * it until it settles, about 300 bytes per `db_write` for the plugin's whole life.
   */
  onEnd: (() => void) | undefined;

  constructor(streams: PluginStreams) {
    this.#pump(streams);
  }

  /** Whether the input has ended (or failed). */
  get ended(): boolean {
    return this.#end !== undefined;
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
    this.onEnd?.();
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

/** What the race between a message's handling and the end of input gives when input ended. */
const ENDED = Symbol("ended");

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
  /** The message's handling, or ENDED should the input end first. */
  const unlessEnded = (handled: Promise<boolean>): Promise<boolean | typeof ENDED> => {
    if (input.ended) {
      // Settled unobserved: the plugin's close awaits a db_write still being stored.
      handled.catch(() => {});
      return Promise.resolve(ENDED);
    }
    return new Promise((resolve, reject) => {
      const end = () => resolve(ENDED);
      input.onEnd = end;
      // Only its own: the next message may have set its own before this runs.
      const settle = () => {
        if (input.onEnd === end) input.onEnd = undefined;
      };
      handled.then((exit) => {
        settle();
        resolve(exit);
      }, (error) => {
        settle();
        reject(error);
      });
    });
  };
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
        const exit = await unlessEnded(plugin.handle(parsed.request, receivedAt));
        if (exit) return;
      }
    }
  }
}
