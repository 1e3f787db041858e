/**
 * Seeded fuzzing of the framer: random messages (any JSON whitespace, blank lines, escapes,
 * brackets in strings) with garbage between them, cut at random points; and random mutations
 * of such streams. Set CLN_BACKUP_SEED to replay a failing run.
 */
import { Buffer } from "node:buffer";
import { MessageFramer } from "./framing.ts";
import { assert, assertEquals } from "../../tests/support/assert.ts";
import { prng } from "../../tests/support/prng.ts";

const CASES = 4000;
const envSeed = Deno.env.get("CLN_BACKUP_SEED");
const seed = envSeed !== undefined
  ? Number(envSeed)
  : crypto.getRandomValues(new Uint32Array(1))[0];

const encoder = new TextEncoder();
const WHITESPACE = ["", "", " ", "\n", "\n\n", "\r\n", "\t", "\n\n\n", " \r\n\r\n\t"];
const CHARS = ["a", "z", "}", "]", "{", "[", '"', "\\", "\n", "\n\n", "\t", "é", "⚡", "\u0000"];

class Generator {
  constructor(readonly random: () => number) {}

  int(below: number): number {
    return Math.floor(this.random() * below);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  ws(): string {
    return this.pick(WHITESPACE);
  }

  string(): string {
    let text = "";
    for (let n = this.int(12); n > 0; n--) text += this.pick(CHARS);
    return JSON.stringify(text);
  }

  value(depth: number): string {
    const kind = depth > 3 ? this.int(3) : this.int(5);
    if (kind === 0) return this.string();
    if (kind === 1) return String(this.int(1000) - 500);
    if (kind === 2) return this.pick(["true", "false", "null"]);
    const items: string[] = [];
    for (let n = this.int(4); n > 0; n--) {
      items.push(
        kind === 3
          ? this.value(depth + 1)
          : `${this.string()}${this.ws()}:${this.ws()}${this.value(depth + 1)}`,
      );
    }
    const [open, close] = kind === 3 ? ["[", "]"] : ["{", "}"];
    return `${open}${this.ws()}${items.join(`${this.ws()},${this.ws()}`)}${this.ws()}${close}`;
  }

  message(): string {
    const id = this.pick([`"cln:db_write#${this.int(99)}"`, String(this.int(99))]);
    return `{${this.ws()}"jsonrpc"${this.ws()}:${this.ws()}"2.0",${this.ws()}"id":${id},` +
      `${this.ws()}"params":${this.ws()}${this.value(0)}${this.ws()}}`;
  }

  /** Bytes that cannot start a message, hold no `\n\n` and do not end with `\n`. */
  garbage(): Uint8Array {
    const bytes = new Uint8Array(1 + this.int(40));
    for (let i = 0; i < bytes.length; i++) bytes[i] = this.int(256);
    const starts = [0x20, 0x0a, 0x0d, 0x09, 0x7b, 0x5b];
    while (starts.includes(bytes[0])) bytes[0] = this.int(256);
    for (let i = 1; i < bytes.length; i++) {
      if (bytes[i] === 0x0a && (bytes[i - 1] === 0x0a || i === bytes.length - 1)) bytes[i] = 0x78;
    }
    return bytes;
  }

  /** Cuts `bytes` into random reads. */
  chunks(bytes: Uint8Array): Uint8Array[] {
    const max = this.pick([1, 3, 17, 200, 5000]);
    const out: Uint8Array[] = [];
    for (let at = 0; at < bytes.length;) {
      const n = 1 + this.int(max);
      out.push(bytes.slice(at, at + n));
      at += n;
    }
    return out;
  }
}

// A plain Uint8Array, whose slice() copies (a Buffer's is a view).
const concat = (parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

/** A stream of messages with garbage between some; what the framer must give back. */
function stream(g: Generator): { bytes: Uint8Array; messages: string[]; garbage: number[] } {
  const parts: Uint8Array[] = [];
  const messages: string[] = [];
  const garbage: number[] = [];
  for (let n = 1 + g.int(6); n > 0; n--) {
    if (g.int(3) === 0) {
      const junk = g.garbage();
      parts.push(junk, encoder.encode("\n\n"));
      garbage.push(junk.length);
    }
    const message = g.message();
    JSON.parse(message);
    messages.push(message);
    parts.push(encoder.encode(message + g.pick(["\n\n", "\n\n", "", "\n\n\n\n", " \n\n"])));
  }
  return { bytes: concat(parts), messages, garbage };
}

Deno.test(`framer fuzz: messages with garbage between, cut at random (seed ${seed})`, () => {
  const g = new Generator(prng(seed));
  const decoder = new TextDecoder();
  for (let i = 0; i < CASES; i++) {
    const expected = stream(g);
    const garbage: number[] = [];
    const framer = new MessageFramer((bytes) => garbage.push(bytes));
    const out: string[] = [];
    for (const chunk of g.chunks(expected.bytes)) {
      for (const message of framer.push(chunk)) out.push(decoder.decode(message));
    }
    const why = `case ${i} of seed ${seed}`;
    assertEquals(out, expected.messages, why);
    assertEquals(garbage, expected.garbage, why);
    assertEquals(framer.pendingBytes, 0, why);
  }
});

Deno.test(`framer fuzz: mutated streams never crash, hold at most their input (seed ${seed})`, () => {
  const g = new Generator(prng(seed ^ 0x5eed));
  for (let i = 0; i < CASES; i++) {
    const bytes = stream(g).bytes;
    let mutated = bytes;
    for (let n = 1 + g.int(4); n > 0; n--) {
      const at = g.int(mutated.length);
      const op = g.int(4);
      if (op === 0) {
        mutated = mutated.slice();
        mutated[at] = g.pick([0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x5c, 0x0a, g.int(256)]);
      } else if (op === 1) {
        mutated = concat([mutated.subarray(0, at), mutated.subarray(at + 1 + g.int(20))]);
      } else if (op === 2) {
        mutated = concat([mutated.subarray(0, at), g.garbage(), mutated.subarray(at)]);
      } else {
        mutated = concat([mutated.subarray(0, at), mutated.subarray(g.int(mutated.length))]);
      }
    }
    const why = `case ${i} of seed ${seed ^ 0x5eed}`;
    const framer = new MessageFramer();
    let pushed = 0;
    let delivered = 0;
    for (const chunk of g.chunks(mutated)) {
      pushed += chunk.length;
      for (const message of framer.push(chunk)) {
        delivered += message.length;
        assert([0x7b, 0x5b].includes(message[0]), why);
        assert([0x7d, 0x5d].includes(message[message.length - 1]), why);
      }
      assert(framer.pendingBytes + delivered <= pushed, why);
    }
    // After the input ends, the next stream is framed whole whatever came before.
    framer.end();
    assertEquals(framer.pendingBytes, 0, why);
    const next = stream(g);
    const out: string[] = [];
    for (const message of framer.push(next.bytes)) out.push(new TextDecoder().decode(message));
    assertEquals(out, next.messages, why);
  }
});
