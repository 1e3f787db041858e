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
