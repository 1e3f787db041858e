import { MessageFramer } from "./framing.ts";
import { assertEquals } from "../../tests/support/assert.ts";

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

Deno.test("framer: many messages in one chunk come out in order", () => {
  const messages = Array.from({ length: 15 }, (_, i) => `{"id":${i},"method":"m"}`);
  assertEquals(frame([messages.map((m) => m + "\n\n").join("")]), messages);
});

Deno.test("framer: one message over many chunks is joined once whole", () => {
  const message = `{"method":"db_write","params":{"writes":["${"ab".repeat(100_000)}"]}}`;
  const chunks: string[] = [];
  for (let at = 0; at < message.length; at += 65536) chunks.push(message.slice(at, at + 65536));
  const framer = new MessageFramer();
  assertEquals(frame(chunks, framer), []);
  assertEquals(framer.pendingBytes, message.length);
  assertEquals(frame(["\n\n"], framer), [message]);
  assertEquals(framer.pendingBytes, 0);
});

Deno.test("framer: a message fed one byte at a time is exact (no stray byte)", () => {
  const text = `{"jsonrpc":"2.0","id":"cln:db_write#21","method":"db_write"}\n\n{"a":1}\n\n`;
  const framer = new MessageFramer();
  const out = frame(text.split(""), framer);
  assertEquals(out, [`{"jsonrpc":"2.0","id":"cln:db_write#21","method":"db_write"}`, `{"a":1}`]);
  assertEquals(framer.pendingBytes, 0);
});

Deno.test("framer: \\n\\n split across chunks, after one piece and after several", () => {
  // One piece before the split.
  assertEquals(frame(['{"a":1}\n', '\n{"b":2}\n\n']), ['{"a":1}', '{"b":2}']);
  // Several pieces, the first "\n" at the end of one: the joined message must not keep it.
  const framer = new MessageFramer();
  const out = frame(['{"a":', "1}\n", "\n"], framer);
  assertEquals(out, ['{"a":1}']);
  assertEquals(out[0].length, 7);
  assertEquals(framer.pendingBytes, 0);
  // The first "\n" alone in its own chunk, then the second.
  assertEquals(frame(['{"c"', ":3}", "\n", "\n"]), ['{"c":3}']);
});

Deno.test("framer: a lone \\n inside pending bytes does not end a message", () => {
  const framer = new MessageFramer();
  assertEquals(frame(['{"a":', "\n", "1}"], framer), []);
  assertEquals(framer.pendingBytes, 8);
  assertEquals(frame(["\n\n"], framer), ['{"a":\n1}']);
});

Deno.test("framer: whitespace between messages is not a message", () => {
  assertEquals(frame(['{"a":1}\n\n \n\n\t\r\n\n{"b":2}\n\n']), ['{"a":1}', '{"b":2}']);
  assertEquals(frame(['{"a":1}\n\n\n\n{"b":2}\n\n']), ['{"a":1}', '{"b":2}']);
  assertEquals(frame(["\n\n", "  ", "\n", "\n"]), []);
});

Deno.test("framer: an empty chunk changes nothing", () => {
  const framer = new MessageFramer();
  assertEquals(frame(['{"a"', new Uint8Array(0), ":1}", new Uint8Array(0), "\n\n"], framer), [
    '{"a":1}',
  ]);
  assertEquals(framer.pendingBytes, 0);
});

Deno.test("framer: a chunk ending inside a message keeps the rest pending", () => {
  const framer = new MessageFramer();
  assertEquals(frame(['{"a":1}\n\n{"b":'], framer), ['{"a":1}']);
  assertEquals(framer.pendingBytes, 5);
  assertEquals(frame(['2}\n\n{"c":3}\n'], framer), ['{"b":2}']);
  assertEquals(frame(["\n"], framer), ['{"c":3}']);
});
