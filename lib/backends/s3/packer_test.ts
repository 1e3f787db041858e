import { assertEquals } from "../../../tests/support/assert.ts";
import { S3Client } from "./client.ts";
import { parseBackupUrl } from "../url.ts";
import type { S3Url } from "./s3_url.ts";
import { changeKey } from "./keys.ts";
import type { ChangeEntry } from "./layout.ts";
import type { S3Backend } from "./backend.ts";
import { Packer } from "./packer.ts";
import { encodeRecord, encodeStatements, RecordKind } from "../../format/record.ts";

Deno.test("Packer: a large pack is read back with time for its bytes, beside the timeout", async () => {
  // Changes of random hex, which their compression halves, 128 KiB each: the pack of two
  // goes back at 512 KiB a second in half a second, past a 200 ms timeout.
  const objects = new Map<string, Uint8Array>();
  const unpacked: ChangeEntry[] = [];
  for (let seq = 1; seq <= 3; seq++) {
    const noise = new Uint8Array(128 * 1024);
    for (let at = 0; at < noise.length; at += 65536) {
      crypto.getRandomValues(noise.subarray(at, at + 65536));
    }
    const hex = Array.from(noise, (b) => b.toString(16).padStart(2, "0")).join("");
    const record = encodeRecord(RecordKind.Change, seq, encodeStatements([hex]));
    const key = changeKey("n/", seq, 0, seq);
    objects.set(`/b01/${key}`, record);
    unpacked.push({ kind: "change", key, size: record.length, seq, gen: 0, version: seq });
  }
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      if (request.method === "PUT") {
        objects.set(path, new Uint8Array(await request.arrayBuffer()));
        return new Response(null);
      }
      if (request.method === "DELETE") {
        objects.delete(path);
        return new Response(null, { status: 204 });
      }
      const bytes = objects.get(path)!;
      if (!path.includes("/pack-")) return new Response(bytes as BodyInit);
      // The pack goes back as slowly as a slow link carries it.
      let sent = 0;
      const slow = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const piece = bytes.subarray(sent, sent + 16 * 1024);
          await new Promise((resolve) => setTimeout(resolve, piece.length / 512));
          controller.enqueue(piece);
          sent += piece.length;
          if (sent === bytes.length) controller.close();
        },
      });
      return new Response(slow);
    },
  );
  const url = parseBackupUrl(
    `s3://b01/n/?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  );
  const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" }, 200);
  const logs: string[] = [];
  const backend = {
    client,
    policy: { timeoutMs: 200, retries: 1, retryDelayMs: 10, backoff: 1 },
    log: (_: string, message: string) => logs.push(message),
    unpacked,
    options: {},
    resync: () => Promise.resolve(),
  } as unknown as S3Backend;
  const packer = new Packer(backend, new Uint8Array(16), [], [], { every: 1 });
  packer.maybePack(3);
  await packer.settle();
  assertEquals(logs, []);
  assertEquals(packer.packs, 1);
  assertEquals(unpacked.map((e) => e.seq), [3]);
});
