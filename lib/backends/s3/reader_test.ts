import { assert, assertEquals, assertMatch, assertRejects } from "../../../tests/support/assert.ts";
import { changeKey } from "./keys.ts";
import { S3BackupReader } from "./reader.ts";
import { encodeRecord, encodeStatements, RecordKind } from "../../format/record.ts";

Deno.test("S3BackupReader: a large change is read with time for its bytes, beside the timeout", async () => {
  // A change of random hex, which its compression halves, 256 KiB: at 512 KiB a second it
  // comes in half a second, past a 200 ms timeout.
  const noise = new Uint8Array(256 * 1024);
  for (let at = 0; at < noise.length; at += 65536) {
    crypto.getRandomValues(noise.subarray(at, at + 65536));
  }
  const hex = Array.from(noise, (b) => b.toString(16).padStart(2, "0")).join("");
  const record = encodeRecord(RecordKind.Change, 1, encodeStatements([hex]));
  const key = changeKey("n/", 1, 0, 1);
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const url = new URL(request.url);
      if (url.searchParams.has("list-type")) {
        return new Response(
          `<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>${key}</Key>` +
            `<Size>${record.length}</Size></Contents></ListBucketResult>`,
        );
      }
      if (url.pathname === "/b01/n/backup-id") return new Response(new Uint8Array(16));
      if (url.pathname !== `/b01/${key}`) {
        return new Response("<Error><Code>NoSuchKey</Code></Error>", { status: 404 });
      }
      // The change comes as slowly as a slow link carries it.
      let sent = 0;
      const slow = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const piece = record.subarray(sent, sent + 16 * 1024);
          await new Promise((resolve) => setTimeout(resolve, piece.length / 512));
          controller.enqueue(piece);
          sent += piece.length;
          if (sent === record.length) controller.close();
        },
      });
      return new Response(slow);
    },
  );
  const url = `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`;
  const policy = { timeoutMs: 200, retries: 1, retryDelayMs: 10, backoff: 1 };
  const credentials = { accessKeyId: "a", secretAccessKey: "s" };
  const reader = await S3BackupReader.fetch(url, credentials, policy);
  try {
    assertEquals(reader.recordVersions(), [1]);
  } finally {
    reader.close();
  }
});

Deno.test("S3BackupReader: a change object whose answer runs past its listed size is refused as it comes, not held whole", async () => {
  const record = encodeRecord(RecordKind.Change, 1, encodeStatements(["INSERT INTO t VALUES (1)"]));
  const key = changeKey("n/", 1, 0, 1);
  // A broken or hostile server: the listing's size, then an answer of 64 MiB, no length.
  const answerBytes = 64 * 1024 * 1024;
  let sent = 0;
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const url = new URL(request.url);
      if (url.searchParams.has("list-type")) {
        return new Response(
          `<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>${key}</Key>` +
            `<Size>${record.length}</Size></Contents></ListBucketResult>`,
        );
      }
      if (url.pathname === "/b01/n/backup-id") return new Response(new Uint8Array(16));
      if (url.pathname !== `/b01/${key}`) {
        return new Response("<Error><Code>NoSuchKey</Code></Error>", { status: 404 });
      }
      const piece = new Uint8Array(64 * 1024);
      const endless = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= answerBytes) return controller.close();
          controller.enqueue(sent === 0 ? record : piece);
          sent += sent === 0 ? record.length : piece.length;
        },
      });
      return new Response(endless);
    },
  );
  const url = `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`;
  const policy = { timeoutMs: 10_000, retries: 1, retryDelayMs: 10, backoff: 1 };
  const credentials = { accessKeyId: "a", secretAccessKey: "s" };
  const error = await assertRejects(() => S3BackupReader.fetch(url, credentials, policy));
  assertMatch(
    error.message,
    new RegExp(`^Cannot read "${key}": the answer holds more than the ${record.length} bytes`),
  );
  // Refused as the bytes came: the server did not get to send the rest.
  assert(sent < 8 * 1024 * 1024, `the reader took ${sent} bytes of the answer`);
});
