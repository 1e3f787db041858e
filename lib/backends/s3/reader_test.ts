import { assert, assertEquals, assertMatch, assertRejects } from "../../../tests/support/assert.ts";
import { baseKey, changeKey } from "./keys.ts";
import { S3BackupReader } from "./reader.ts";
import { encodeRecord, encodeStatements, RecordKind } from "../../format/record.ts";

/** How the reader signs its requests: the fake server below checks nothing. */
const CREDENTIALS = { accessKeyId: "a", secretAccessKey: "s" };

/**
 * A fake S3 server holding bucket b01's backup at n/: its backup-id and one change object
 * `key`, listed at `size` bytes, whose answer is what `body` makes for each request.
 */
function serveOneChange(
  key: string,
  size: number,
  body: () => ReadableStream<Uint8Array>,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const url = new URL(request.url);
      if (url.searchParams.has("list-type")) {
        return new Response(
          `<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>${key}</Key>` +
            `<Size>${size}</Size></Contents></ListBucketResult>`,
        );
      }
      if (url.pathname === "/b01/n/backup-id") return new Response(new Uint8Array(16));
      if (url.pathname !== `/b01/${key}`) {
        return new Response("<Error><Code>NoSuchKey</Code></Error>", { status: 404 });
      }
      return new Response(body());
    },
  );
}

/** The s3:// URL of the backup `server` holds. */
const backupUrl = (server: Deno.HttpServer<Deno.NetAddr>): string =>
  `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`;

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
  // The change comes as slowly as a slow link carries it.
  await using server = serveOneChange(key, record.length, () => {
    let sent = 0;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        const piece = record.subarray(sent, sent + 16 * 1024);
        await new Promise((resolve) => setTimeout(resolve, piece.length / 512));
        controller.enqueue(piece);
        sent += piece.length;
        if (sent === record.length) controller.close();
      },
    });
  });
  const policy = { timeoutMs: 200, retries: 1, retryDelayMs: 10, backoff: 1 };
  const reader = await S3BackupReader.fetch(backupUrl(server), CREDENTIALS, policy);
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
  await using server = serveOneChange(key, record.length, () => {
    const piece = new Uint8Array(64 * 1024);
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= answerBytes) return controller.close();
        controller.enqueue(sent === 0 ? record : piece);
        sent += sent === 0 ? record.length : piece.length;
      },
    });
  });
  const policy = { timeoutMs: 10_000, retries: 1, retryDelayMs: 10, backoff: 1 };
  const error = await assertRejects(() =>
    S3BackupReader.fetch(backupUrl(server), CREDENTIALS, policy)
  );
  assertMatch(
    error.message,
    new RegExp(`^Cannot read "${key}": the answer holds more than the ${record.length} bytes`),
  );
  // Refused as the bytes came: the server did not get to send the rest.
  assert(sent < 8 * 1024 * 1024, `the reader took ${sent} bytes of the answer`);
});

Deno.test("S3BackupReader: a base deleted after the listing (a compaction meanwhile) is listed again, not a failure", async () => {
  const record = encodeRecord(RecordKind.Change, 1, encodeStatements(["INSERT INTO t VALUES (1)"]));
  const change = changeKey("n/", 1, 0, 1);
  const base = baseKey("n/", 1, 1);
  let listings = 0;
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const url = new URL(request.url);
      if (url.searchParams.has("list-type")) {
        // The first listing names a base, which is gone when read; the next names none.
        const [key, size] = listings++ === 0 ? [base, 4096] : [change, record.length];
        return new Response(
          `<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>${key}</Key>` +
            `<Size>${size}</Size></Contents></ListBucketResult>`,
        );
      }
      if (url.pathname === "/b01/n/backup-id") return new Response(new Uint8Array(16));
      if (url.pathname === `/b01/${change}`) return new Response(record as BodyInit);
      return new Response("<Error><Code>NoSuchKey</Code></Error>", { status: 404 });
    },
  );
  const policy = { timeoutMs: 5_000, retries: 1, retryDelayMs: 10, backoff: 1 };
  const reader = await S3BackupReader.fetch(backupUrl(server), CREDENTIALS, policy);
  try {
    assertEquals(reader.recordVersions(), [1]);
    assertEquals(listings, 2);
  } finally {
    reader.close();
  }
});
