import { MessageFramer } from "./framing.ts";
import { assert, assertEquals } from "../../tests/support/assert.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Pushes each chunk in turn; returns every message completed, as text. */
function frame(chunks: (string | Uint8Array)[], framer = new MessageFramer()): string[] {
  const out: string[] = [];
  for (const chunk of chunks) {
    const bytes = typeof chunk === "string" ? encoder.encode(chunk) : chunk;
    for (const message of framer.push(bytes)) out.push(decoder.decode(message));
  }
  return out;
}

/** Every way of cutting `text` in two, and one byte at a time. */
function cuts(text: string): string[][] {
  const bytes = encoder.encode(text);
  const ways: string[][] = [];
  for (let at = 0; at <= bytes.length; at++) {
    ways.push([decoder.decode(bytes.subarray(0, at)), decoder.decode(bytes.subarray(at))]);
  }
  ways.push(text.split(""));
  return ways;
}

/** A framer that records the garbage runs it drops. */
function framerWithGarbage(): { framer: MessageFramer; garbage: number[] } {
  const garbage: number[] = [];
  return { framer: new MessageFramer((bytes) => garbage.push(bytes)), garbage };
}

Deno.test("framer: many messages in one chunk come out in order", () => {
  const messages = Array.from({ length: 15 }, (_, i) => `{"id":${i},"method":"m"}`);
  assertEquals(frame([messages.map((m) => m + "\n\n").join("")]), messages);
});

Deno.test("framer: one message over many chunks is joined once whole", () => {
  const message = `{"method":"db_write","params":{"writes":["${"ab".repeat(100_000)}"]}}`;
  const chunks: string[] = [];
  for (let at = 0; at < message.length - 1; at += 65536) {
    chunks.push(message.slice(at, Math.min(at + 65536, message.length - 1)));
  }
  const framer = new MessageFramer();
  assertEquals(frame(chunks, framer), []);
  assertEquals(framer.pendingBytes, message.length - 1);
  assertEquals(frame(["}\n\n"], framer), [message]);
  assertEquals(framer.pendingBytes, 0);
});

Deno.test("framer: a message fed one byte at a time is exact (no stray byte)", () => {
  const text = `{"jsonrpc":"2.0","id":"cln:db_write#21","method":"db_write"}\n\n{"a":1}\n\n`;
  const framer = new MessageFramer();
  const out = frame(text.split(""), framer);
  assertEquals(out, [`{"jsonrpc":"2.0","id":"cln:db_write#21","method":"db_write"}`, `{"a":1}`]);
  assertEquals(framer.pendingBytes, 0);
});

Deno.test("framer: a message ends at its closing bracket, before lightningd's \\n\\n", () => {
  const framer = new MessageFramer();
  assertEquals(frame(['{"a":1}'], framer), ['{"a":1}']);
  assertEquals(frame(["\n", '\n{"b":', "2}\n"], framer), ['{"b":2}']);
  assertEquals(framer.pendingBytes, 0);
});

// A forwarded RPC call is its caller's bytes: lightning-cli's spacing, or any client's.
const LIGHTNING_CLI =
  `{ "jsonrpc" : "2.0", "method" : "backup-status", "id" : "cli:backup-status#4638/cln:backup-status#132", "params" :[ true] }`;
const BLANK_LINES = `{\n  "jsonrpc": "2.0",\n\n  "id": "7/cln:backup-status#133",\n\n\n` +
  `  "method": "backup-status",\n  "params": {\n\n"via": "raw socket"}\n\n}`;
const CRLF_TABS = `{\r\n\t"jsonrpc":\t"2.0",\r\n\r\n\t"id": 7,\r\n\t"method": "backup-status",` +
  `\r\n\r\n\t"params": [\r\n\r\n]\r\n}`;

Deno.test("framer: \\n\\n, CRLF and tabs inside a message never split it, at any cut", () => {
  for (const message of [LIGHTNING_CLI, BLANK_LINES, CRLF_TABS]) {
    JSON.parse(message);
    const stream = `${message}\n\n{"after":1}\n\n`;
    for (const chunks of cuts(stream)) {
      assertEquals(frame(chunks), [message, '{"after":1}'], JSON.stringify(chunks));
    }
  }
});

Deno.test("framer: strings holding \\n\\n escapes, brackets and quotes, at any cut", () => {
  const message = JSON.stringify({
    jsonrpc: "2.0",
    id: 'a "quoted" } id ]',
    method: "db_write",
    params: {
      writes: [
        "INSERT INTO t VALUES ('}}}]]')",
        "a\n\nb\\\\",
        '\\"}\\',
        '{["',
        "ends with a backslash \\",
      ],
    },
  });
  assert(message.includes("\\n\\n") && message.includes('\\\\"'));
  for (const chunks of cuts(`${message}\n\n${message}\n\n`)) {
    assertEquals(frame(chunks), [message, message]);
  }
});

Deno.test("framer: whitespace between messages is not a message", () => {
  assertEquals(frame(['{"a":1}\n\n \n\n\t\r\n\n{"b":2}\n\n']), ['{"a":1}', '{"b":2}']);
  assertEquals(frame(['{"a":1}{"b":2}']), ['{"a":1}', '{"b":2}']);
  assertEquals(frame(["\n\n", "  ", "\n", "\n"]), []);
});

Deno.test("framer: an empty chunk changes nothing", () => {
  const framer = new MessageFramer();
  assertEquals(frame(['{"a"', new Uint8Array(0), ":1", new Uint8Array(0), "}\n\n"], framer), [
    '{"a":1}',
  ]);
  assertEquals(framer.pendingBytes, 0);
});

Deno.test("framer: a chunk ending inside a message keeps the rest pending", () => {
  const framer = new MessageFramer();
  assertEquals(frame(['{"a":1}\n\n{"b":'], framer), ['{"a":1}']);
  assertEquals(framer.pendingBytes, 5);
  assertEquals(frame(['2}\n\n{"c":3'], framer), ['{"b":2}']);
  assertEquals(frame(["}"], framer), ['{"c":3}']);
});

Deno.test("framer: the bytes of a pending message are copies, not views of the read buffer", () => {
  const framer = new MessageFramer();
  const buffer = encoder.encode('{"a":"xy');
  assertEquals(framer.push(buffer), []);
  buffer.fill(0x30);
  assertEquals(frame(['z"}'], framer), ['{"a":"xyz"}']);
});

Deno.test("framer: garbage between messages is dropped up to \\n\\n, and counted", () => {
  const { framer, garbage } = framerWithGarbage();
  const stream = [
    '{"a":1}\n\n',
    "42\n\n",
    "null\n\n",
    '"text"\n\n',
    'not json {"b":0}\nstill garbage\n\n',
    '}]\n\n{"b":2}\n\n',
    '{"c":3}}\n\n',
    '\xff\xfe\x00\n\n{"d":4}\n\n',
  ].join("");
  for (const chunks of [[stream], stream.split("")]) {
    garbage.length = 0;
    assertEquals(frame(chunks, framer), ['{"a":1}', '{"b":2}', '{"c":3}', '{"d":4}']);
    assertEquals(garbage, [2, 4, 6, 30, 2, 1, 5]);
    assertEquals(framer.pendingBytes, 0);
  }
});

Deno.test("framer: \\n\\n split across reads ends garbage, a lone \\n does not", () => {
  const { framer, garbage } = framerWithGarbage();
  assertEquals(frame(["xx\n", "y\n", "\n", '{"a":1}'], framer), ['{"a":1}']);
  assertEquals(garbage, [4]);
});

Deno.test("framer: end() reports a partial message and unreported garbage, then resets", () => {
  const { framer, garbage } = framerWithGarbage();
  frame(['{"a":"\\'], framer);
  assertEquals(framer.end(), 7);
  assertEquals(frame(['{"b":1}'], framer), ['{"b":1}']);
  frame(["junk"], framer);
  assertEquals(framer.end(), 0);
  assertEquals(garbage, [4]);
  assertEquals(frame(['{"c":1}'], framer), ['{"c":1}']);
});

Deno.test("framer: a 64 MiB message in 64 KiB reads is delivered whole", () => {
  const head = encoder.encode('{"jsonrpc":"2.0","id":1,"method":"db_write","params":{"writes":["');
  const tail = encoder.encode('"]}}\n\n');
  const size = 64 * 1024 * 1024;
  const stream = new Uint8Array(size);
  stream.set(head);
  stream.fill(0x61, head.length, size - tail.length);
  // Escapes and brackets inside the string, spread through it; each decodes 2 bytes shorter.
  let escapes = 0;
  for (let at = head.length + 1000; at < size - tail.length - 10; at += 1_048_573) {
    stream.set(encoder.encode('\\"}]\\\\'), at);
    escapes++;
  }
  stream.set(tail, size - tail.length);
  const framer = new MessageFramer();
  const out: Uint8Array[] = [];
  for (let at = 0; at < size; at += 65536) {
    out.push(...framer.push(stream.subarray(at, Math.min(size, at + 65536))));
  }
  assertEquals(out.length, 1);
  assertEquals(out[0].length, size - 2);
  assertEquals(framer.pendingBytes, 0);
  const writes = JSON.parse(decoder.decode(out[0])).params.writes;
  assertEquals(writes[0].length, size - head.length - tail.length - 2 * escapes);
});
