import { assert, assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { ByteChannel, ChannelCancelledError } from "./byte_channel.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("ByteChannel: messages arrive whole and in order across the ring's wrap", () => {
  // 17 bytes a round (two lengths and 9 bytes) through 32: each round starts elsewhere.
  const channel = ByteChannel.create(32);
  const receiver = new ByteChannel(channel.shared);
  for (let round = 0; round < 10; round++) {
    channel.send(bytes(round, 1, 2), bytes(3, 4, 5, 6, 7, 8));
    channel.send(new Uint8Array());
    assertEquals(receiver.receive(), bytes(round, 1, 2, 3, 4, 5, 6, 7, 8));
    assertEquals(receiver.receive(), new Uint8Array());
  }
  channel.close();
  assertEquals(receiver.receive(), undefined);
});

Deno.test("ByteChannel: a message is a view of one buffer, which the next receive reuses", () => {
  const channel = ByteChannel.create(1024);
  channel.send(bytes(1, 2, 3));
  channel.send(bytes(4, 5));
  channel.send(new Uint8Array(600).fill(7));
  const first = channel.receive()!;
  assertEquals(first, bytes(1, 2, 3));
  const second = channel.receive()!;
  assertEquals(second, bytes(4, 5));
  assert(second.buffer === first.buffer, "each message in a new buffer");
  // So a message kept past the next receive changes: a caller copies what it keeps.
  assertEquals(first, bytes(4, 5, 3));
  // A message larger than the buffer gets a larger one, whole.
  assertEquals(channel.receive(), new Uint8Array(600).fill(7));
});

Deno.test("ByteChannel: a message over 4 MiB gets a buffer of its own, not kept", () => {
  const channel = ByteChannel.create(8 << 20);
  channel.send(bytes(1));
  channel.send(new Uint8Array(5 << 20).fill(3));
  channel.send(bytes(2));
  const small = channel.receive()!;
  const large = channel.receive()!;
  assertEquals([large.length, large[0], large.at(-1)], [5 << 20, 3, 3]);
  assert(large.buffer !== small.buffer);
  assert(channel.receive()!.buffer === small.buffer, "the large message's buffer was kept");
});

Deno.test("ByteChannel: a receive with nothing sent times out", async () => {
  const channel = ByteChannel.create(16);
  await assertRejects(() => channel.receive(30), /^no bytes arrived for 30 ms$/);
});

Deno.test("ByteChannel: a message cut short by the sender's close is an error", async () => {
  const channel = ByteChannel.create(16);
  // A length that promises 9 bytes, then only 2 of them.
  channel.send(bytes(0, 0, 0, 9, 1, 2));
  channel.close();
  assertEquals(channel.receive(), bytes(0, 0, 0, 9, 1, 2));
  await assertRejects(() => {
    const half = ByteChannel.create(8);
    half.send(bytes(1, 2, 3, 4));
    half.close();
    // Steal the length's bytes: the receiver then starts in the middle of a message.
    const control = new Int32Array(half.shared, 0, 4);
    Atomics.store(control, 1, 2);
    half.receive();
  }, /^the sender closed the channel in the middle of a message$/);
});

Deno.test("ByteChannel: once cancelled, the sender's next send throws", async () => {
  const channel = ByteChannel.create(16);
  channel.send(bytes(1));
  channel.cancel();
  const error = await assertRejects(() => channel.send(bytes(2)), /the receiver stopped reading/);
  assert(error instanceof ChannelCancelledError);
});

Deno.test("ByteChannel: the capacity is a power of two", async () => {
  await assertRejects(() => ByteChannel.create(100), /power of two, not 100$/);
});

Deno.test("ByteChannel: a sender on a full ring, woken at a quarter free, loses nothing", () => {
  // A worker sends messages of every size from 0 to 3x the ring through it; each one's
  // bytes count up from its number, so a byte lost, doubled or reordered shows. A wake the
  // sender misses leaves it asleep for the whole minute-long slice: the receive times out.
  const channel = ByteChannel.create(64, 60_000);
  const source = `
    import { ByteChannel } from ${JSON.stringify(import.meta.resolve("./byte_channel.ts"))};
    self.onmessage = (event) => {
      const channel = new ByteChannel(event.data);
      channel.send();
      for (let i = 0; i < 2000; i++) {
        channel.send(Uint8Array.from({ length: i % 193 }, (_, j) => (i + j) & 0xff));
      }
      channel.close();
      self.close();
    };`;
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  try {
    worker.postMessage(channel.shared);
    channel.receive(30_000); // the worker's start
    for (let i = 0; i < 2000; i++) {
      const message = channel.receive(5_000);
      assertEquals(message, Uint8Array.from({ length: i % 193 }, (_, j) => (i + j) & 0xff));
    }
    assertEquals(channel.receive(5_000), undefined);
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
});
