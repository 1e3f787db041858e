import { assert, assertEquals, assertMatch, assertRejects } from "../../../tests/support/assert.ts";
import {
  LISTING_BOUND,
  type ListingBound,
  MOST_OBJECT_BYTES,
  readAllowanceBytes,
  S3Client,
  S3Error,
} from "./client.ts";
import { uploadAllowanceMs } from "../upload_allowance.ts";
import { parseBackupUrl } from "../url.ts";
import type { S3Url } from "./s3_url.ts";
import { makeCa } from "../../../tests/support/test_ca.ts";
import { retrying } from "./retry.ts";
import { putNew } from "./backend.ts";
import { CREDENTIALS_FILE, loadCredentials } from "./credentials.ts";

Deno.test("S3Client: a request that reaches no server says why, not only 'fetch failed'", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  const url = parseBackupUrl(`s3://b01/n?endpoint=http://127.0.0.1:${port}&path-style=1`);
  const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" });
  const error = await assertRejects(() => client.get("n/backup-id"));
  assertMatch(
    error.message,
    new RegExp(
      `^Cannot read "n/backup-id": fetch failed: .*Connection refused.* \\(bucket "b01" at http://127\\.0\\.0\\.1:${port}\\)$`,
    ),
  );
});

Deno.test("S3Client: a PUT that made no connection is unsent; one cut after it went out is not (it may have stored its object)", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refused = (closed.addr as Deno.NetAddr).port;
  closed.close();
  // A server that reads the request, then closes without an answer.
  const cutting = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of cutting) {
      await conn.read(new Uint8Array(65536)).catch(() => null);
      conn.close();
    }
  })();
  try {
    const put = async (port: number) => {
      const url = parseBackupUrl(`s3://b01/n?endpoint=http://127.0.0.1:${port}&path-style=1`);
      const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" });
      const error = await assertRejects(() => client.put("n/key.json", new Uint8Array(8)));
      assert(error instanceof S3Error && error.status === undefined, error.message);
      return error.unsent;
    };
    assertEquals(await put(refused), true);
    assertEquals(await put((cutting.addr as Deno.NetAddr).port), false);
  } finally {
    cutting.close();
    await serving.catch(() => {});
  }
});

Deno.test("S3Client: keys a request header cannot hold are said in one line, not retried", async () => {
  const url = parseBackupUrl("s3://b01/n?endpoint=http://127.0.0.1:1&path-style=1");
  const client = new S3Client(url as S3Url, { accessKeyId: "AKIA\u20ac", secretAccessKey: "s" });
  const error = await assertRejects(() => client.get("n/backup-id"));
  assertMatch(
    error.message,
    /^Cannot read "n\/backup-id": the S3 access key id holds a character a request header cannot carry \(bucket "b01" at http:\/\/127\.0\.0\.1:1\): check the access key id for a stray character$/,
  );
  assert(error instanceof S3Error && !error.transient);
});

Deno.test("S3Client: a session token a header cannot hold is named, its value not shown", async () => {
  const url = parseBackupUrl("s3://b01/n?endpoint=http://127.0.0.1:1&path-style=1");
  const client = new S3Client(url as S3Url, {
    accessKeyId: "a",
    secretAccessKey: "s",
    sessionToken: "TOKEN\nSECRET",
  });
  const error = await assertRejects(() => client.get("n/backup-id"));
  assertEquals(
    error.message,
    'Cannot read "n/backup-id": the S3 session token holds a character a request header cannot ' +
      'carry (bucket "b01" at http://127.0.0.1:1): check the session token for a stray character',
  );
  assert(error instanceof S3Error && !error.transient);
});

/** A stand-in for Amazon S3 answering every request with `status`, `code` and `headers`. */
async function answering(
  status: number,
  code: string,
  headers: Record<string, string>,
  body: (client: S3Client) => Promise<void>,
): Promise<void> {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
    `<Message>the message</Message></Error>`;
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(xml, { status, headers }),
  );
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1&region=us-east-1`,
  );
  await body(new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" }));
}

Deno.test("S3Client: a bucket in another region than the URL's is named as such", async () => {
  await answering(
    301,
    "PermanentRedirect",
    { "x-amz-bucket-region": "eu-central-1" },
    async (c) => {
      const error = await assertRejects(() => c.get("n/backup-id"));
      assertMatch(
        error.message,
        /: 301 PermanentRedirect \(bucket "b01" at .*\): the bucket is in region eu-central-1: write region=eu-central-1 in the URL/,
      );
    },
  );
  await answering(400, "AuthorizationHeaderMalformed", {}, async (c) => {
    const error = await assertRejects(() => c.get("n/backup-id"));
    assertMatch(error.message, /400 AuthorizationHeaderMalformed .*: fix region= \(or endpoint=\)/);
  });
  await answering(403, "RequestTimeTooSkewed", {}, async (c) => {
    const error = await assertRejects(() => c.get("n/backup-id"));
    assertMatch(
      error.message,
      /403 RequestTimeTooSkewed .*clock is too far off S3's: set it right/,
    );
  });
});

Deno.test("S3Client: an answer cut inside its body is asked again, not taken as its status", async () => {
  // A gateway killed while it answered: a 404's head, then part of its body, then nothing.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(64 * 1024));
    await conn.write(
      new TextEncoder().encode(
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\nContent-Length: 200\r\n\r\n<Err",
      ),
    );
    conn.close();
  })();
  try {
    const { port } = listener.addr as Deno.NetAddr;
    const url = parseBackupUrl(`s3://b01/n?endpoint=http://127.0.0.1:${port}&path-style=1`);
    const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" });
    const error = await assertRejects(() => client.get("n/key.json"));
    assert(error instanceof S3Error, String(error));
    assertEquals(error.code, undefined);
    assert(error.transient, "a cut 404 was taken as final (NoSuchKey or not)");
  } finally {
    await serving;
    listener.close();
  }
});

Deno.test("S3Client: a trusted certificate for another host is not blamed on its CA", async () => {
  // The CA is trusted as a public one is (DENO_CERT), as Let's Encrypt's is for a store whose
  // certificate names its host but not the bucket's (virtual-hosted).
  const ca = await makeCa("a public CA");
  const dir = Deno.makeTempDirSync();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {}, ...await ca.issue(["other.host"]) },
    () => new Response("never"),
  );
  try {
    Deno.writeTextFileSync(`${dir}/ca.pem`, ca.cert);
    const client = new URL("./client.ts", import.meta.url).href;
    const url = `s3://b01/n?endpoint=https://localhost:${server.addr.port}&path-style=1`;
    const { stdout } = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { S3Client } from "${client}";
        import { parseBackupUrl } from "${new URL("../url.ts", import.meta.url).href}";
        const client = new S3Client(parseBackupUrl("${url}"), { accessKeyId: "a", secretAccessKey: "s" });
        await client.get("n/backup-id").catch((error) => console.log(error.message, error.transient));`,
      ],
      env: { DENO_CERT: `${dir}/ca.pem`, DENO_NO_UPDATE_CHECK: "1" },
      stderr: "inherit",
    }).output();
    assertEquals(
      new TextDecoder().decode(stdout),
      `Cannot read "n/backup-id": fetch failed: client error (Connect): invalid peer ` +
        `certificate: certificate not valid for name "localhost"; certificate is only valid for ` +
        `DnsName("other.host") (bucket "b01" at https://localhost:${server.addr.port}) false\n`,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("S3Client: a ca= file replaced while the process runs is trusted at the next try", async () => {
  const [before, after] = [await makeCa("the CA before"), await makeCa("the CA after")];
  const dir = Deno.makeTempDirSync();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {}, ...await after.issue(["localhost"]) },
    () => new Response("stored"),
  );
  try {
    const ca = `${dir}/ca.pem`;
    Deno.writeTextFileSync(ca, before.cert);
    const url = parseBackupUrl(
      `s3://b01/n?endpoint=https://localhost:${server.addr.port}&path-style=1&ca=${ca}`,
    );
    const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" });
    const untrusted = await assertRejects(() => client.get("x"), /must chain to a CA in/);
    assertEquals((untrusted as S3Error).transient, false);
    // The store's certificate now comes from another CA, and so does the file (as a
    // socket+tls URL's CA file is read at each connection).
    Deno.writeTextFileSync(ca, after.cert);
    const log: string[] = [];
    const policy = { timeoutMs: 5_000, retries: 1, retryDelayMs: 0, backoff: 1 };
    const bytes = await retrying("a read", policy, (_, m) => log.push(m), () => client.get("x"));
    assertEquals(new TextDecoder().decode(bytes), "stored");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("S3Client: a large upload over a slow link gets time for its bytes, beside the timeout", async () => {
  // A link that takes in 512 KiB a second: 256 KiB take half a second, past a 200 ms timeout.
  const body = new Uint8Array(256 * 1024);
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      let got = 0;
      for await (const chunk of request.body!) {
        got += chunk.length;
        await new Promise((resolve) => setTimeout(resolve, chunk.length / 512));
      }
      return new Response(null, { status: got === body.length ? 200 : 400 });
    },
  );
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  );
  const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" }, 200);
  await client.put("n/large", body);
});

Deno.test("putNew: a large change stored by a try whose answer was lost is read back with time for its bytes", async () => {
  // A link of 512 KiB a second: 256 KiB take half a second, past a 200 ms timeout.
  const body = new Uint8Array(256 * 1024).fill(7);
  let stored: Uint8Array | undefined;
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      if (request.method === "PUT") {
        const got = new Uint8Array(await request.arrayBuffer());
        if (stored) {
          const xml = "<Error><Code>PreconditionFailed</Code></Error>";
          return new Response(xml, { status: 412 });
        }
        // Stored, but the answer is lost: the client tries again.
        stored = got;
        return new Response("<Error><Code>InternalError</Code></Error>", { status: 500 });
      }
      // The object goes back as slowly as it came.
      let sent = 0;
      const slow = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const piece = stored!.subarray(sent, sent + 16 * 1024);
          await new Promise((resolve) => setTimeout(resolve, piece.length / 512));
          controller.enqueue(piece);
          sent += piece.length;
          if (sent === stored!.length) controller.close();
        },
      });
      return new Response(slow);
    },
  );
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  );
  const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" }, 200);
  const logs: string[] = [];
  const policy = { timeoutMs: 200, retries: 2, retryDelayMs: 10, backoff: 1 };
  await putNew(client, "n/large", body, "change 5", policy, (_, message) => logs.push(message));
  assertEquals(logs.at(-1), "change 5 was stored by an earlier try, whose answer was lost");
});

Deno.test("S3Client: a listing whose continuation token comes round is refused, not followed for ever", async () => {
  // A store that answers every page empty and truncated, with a token that does not move on.
  let pages = 0;
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    pages++;
    return new Response(
      "<ListBucketResult><IsTruncated>true</IsTruncated>" +
        "<NextContinuationToken>again</NextContinuationToken></ListBucketResult>",
    );
  });
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  );
  const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" }, 5_000);
  const listing = async () => {
    for await (const page of client.list("n/")) assertEquals(page, []);
  };
  const policy = { timeoutMs: 5_000, retries: 2, retryDelayMs: 0, backoff: 1 };
  const error = await assertRejects(() => retrying("listing", policy, () => {}, listing));
  assertEquals(
    error.message,
    `Cannot list "n/": the listing gives a continuation token it gave before (bucket "b01" at ` +
      `http://127.0.0.1:${server.addr.port}), so its pages would come round for ever: check ` +
      `the S3 service; listing gave up after 3 tries: check that S3 is reachable and answers`,
  );
  assertEquals(pages, 6);
});

Deno.test("S3Client: a listing of uploads whose markers come round is refused, not followed for ever", async () => {
  // A store that answers every page of uploads empty and truncated, with markers that do
  // not move on: a compaction, which aborts what an earlier one left, never ended.
  let pages = 0;
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    pages++;
    return new Response(
      "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>" +
        "<NextKeyMarker>n/base-1</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker>" +
        "</ListMultipartUploadsResult>",
    );
  });
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  );
  const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" }, 5_000);
  const listing = async () => {
    for await (const page of client.listMultipart("n/base-")) assertEquals(page, []);
  };
  const policy = { timeoutMs: 5_000, retries: 2, retryDelayMs: 0, backoff: 1 };
  const error = await assertRejects(() => retrying("listing", policy, () => {}, listing));
  assertEquals(
    error.message,
    `Cannot list the uploads under "n/base-": the listing gives markers it gave before ` +
      `(bucket "b01" at http://127.0.0.1:${server.addr.port}), so its pages would come round ` +
      `for ever: check the S3 service; listing gave up after 3 tries: check that S3 is ` +
      `reachable and answers`,
  );
  assertEquals(pages, 6);
});

Deno.test("S3Client: a read is given time for the bytes an object can hold, not for a wrong size in a listing", () => {
  // A listing that names a pack of 10 GB gave a read 22 hours a try; of 300 GB, more than a
  // timer holds, so it was cut off at once.
  assertEquals(readAllowanceBytes(10e9), MOST_OBJECT_BYTES);
  assertEquals(readAllowanceBytes(300e9), MOST_OBJECT_BYTES);
  assert(uploadAllowanceMs(MOST_OBJECT_BYTES) < 40 * 60_000);
  // The largest change there can be keeps its time, and a small read none.
  assertEquals(readAllowanceBytes(MOST_OBJECT_BYTES), MOST_OBJECT_BYTES);
  assertEquals(readAllowanceBytes(16 * 1024 * 1024), 16 * 1024 * 1024);
  assertEquals(readAllowanceBytes(0), 0);
});

Deno.test("S3Client: a ca= file that does not read is said once, and not tried again", async () => {
  const url = parseBackupUrl(
    "s3://b01/n?endpoint=https://localhost:1&path-style=1&ca=/nonexistent/home-ca.pem",
  );
  const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" });
  const error = await assertRejects(() => client.get("n/backup-id"));
  assert(error instanceof S3Error, String(error));
  assert(error instanceof S3Error && !error.transient);
  assertMatch(
    error.message,
    /^Cannot read "n\/backup-id": cannot read the CA certificates "\/nonexistent\/home-ca\.pem" the URL names \(.*\): put the PEM file there, readable by this user, or fix ca= in the URL$/,
  );
});

/**
 * A stand-in for a broken or hostile S3 whose listing pages each hold `keys` keys and are
 * truncated with a fresh token, up to `pages` pages; `asked` counts the pages asked for.
 */
function endlessListing(keys: number, pages: number) {
  const served = { asked: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    const page = served.asked++;
    const contents = Array.from(
      { length: keys },
      (_, i) => `<Contents><Key>n/other/${page}-${i}</Key><Size>1</Size></Contents>`,
    ).join("");
    const more = served.asked < pages;
    return new Response(
      `<ListBucketResult><IsTruncated>${more}</IsTruncated>${contents}` +
        `<NextContinuationToken>t${page}</NextContinuationToken></ListBucketResult>`,
    );
  });
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  );
  const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" }, 5_000);
  return { server, client, served };
}

/** How many keys `client`'s listing of "n/" under `bound` holds. */
async function listAll(client: S3Client, bound: ListingBound): Promise<number> {
  let keys = 0;
  for await (const page of client.list("n/", bound)) keys += page.length;
  return keys;
}

Deno.test("S3Client: a listing of empty pages with fresh tokens for ever is refused past its pages", async () => {
  // Left unbounded, it would end only where the stand-in gives up: at 500 pages.
  const { server, client, served } = endlessListing(0, 500);
  await using _ = server;
  const error = await assertRejects(() => listAll(client, { entries: 1000, pages: 20 }));
  assert(error instanceof S3Error && !error.transient);
  assertEquals(
    error.message,
    `Cannot list "n/": the listing goes on past 20 pages (bucket "b01" at ` +
      `http://127.0.0.1:${server.addr.port}), more than a backup's prefix holds: check the S3 ` +
      `service, and that no other tool keeps its objects under the backup's prefix`,
  );
  assertEquals(served.asked, 21);
});

Deno.test("S3Client: a listing past its keys is refused before its page is given, and asks no further", async () => {
  const { server, client, served } = endlessListing(1000, 500);
  await using _ = server;
  const error = await assertRejects(() => listAll(client, { entries: 2500, pages: 1000 }));
  assertMatch(error.message, /^Cannot list "n\/": the listing goes on past 2500 entries \(/);
  assertEquals(served.asked, 3);
  // Within its bound, the same listing is whole.
  const { server: whole, client: wholeClient } = endlessListing(1000, 3);
  await using __ = whole;
  assertEquals(await listAll(wholeClient, { entries: 3000, pages: 3 }), 3000);
});

Deno.test("S3Client: a listing's key longer than S3 stores is refused", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response(
        `<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>n/${"k".repeat(1023)}` +
          `</Key><Size>1</Size></Contents></ListBucketResult>`,
      ),
  );
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  );
  const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" }, 5_000);
  const error = await assertRejects(() => listAll(client, LISTING_BOUND));
  assertEquals(
    error.message,
    "Cannot list objects: an entry's key is longer than S3's 1024 bytes: the server is not " +
      "answering as S3 does: check the endpoint",
  );
});

Deno.test("S3Client: keys S3 refuses are read again; requests refused at once all try the new ones", async () => {
  // A store whose session token for "old" expired: it takes "new" only.
  let refused = 0;
  const arrived: (() => void)[] = [];
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      await request.arrayBuffer();
      if (request.headers.get("authorization")?.includes("Credential=new/")) {
        return new Response(null, { status: 200 });
      }
      // Both first tries are signed with the old keys before either is answered.
      refused++;
      await new Promise<void>((resolve) => {
        arrived.push(resolve);
        if (arrived.length === 2) arrived.forEach((go) => go());
      });
      return new Response("<Error><Code>ExpiredToken</Code></Error>", { status: 400 });
    },
  );
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  ) as S3Url;
  const old = { accessKeyId: "old", secretAccessKey: "s", sessionToken: "t" };
  const policy = { timeoutMs: 5_000, retries: 1, retryDelayMs: 1, backoff: 1 };
  const put = (client: S3Client, key: string) =>
    retrying(`storing ${key}`, policy, () => {}, () => client.put(key, new Uint8Array(1)));

  // Keys read again that are the same: refused for good, saying what to do.
  const stale = new S3Client(url, old, 5_000, () => ({ ...old }));
  const results = await Promise.allSettled([put(stale, "n/a"), put(stale, "n/b")]);
  for (const result of results) {
    assert(result.status === "rejected");
    const error = result.reason as S3Error;
    assert(!error.transient);
    assertMatch(error.message, /400 ExpiredToken .*session token expired: write fresh temporary/);
  }
  assertEquals(refused, 2);

  // Keys replaced in the file: both requests refused together go on with them.
  arrived.length = 0;
  let reads = 0;
  const renewing = new S3Client(url, old, 5_000, () => {
    reads++;
    return { accessKeyId: "new", secretAccessKey: "s2" };
  });
  await Promise.all([put(renewing, "n/a"), put(renewing, "n/b")]);
  assertEquals(renewing.credentials.accessKeyId, "new");
  assertEquals(reads, 1);
});

Deno.test("putNew: a conditional write in conflict with another under way (an earlier try's, slow) is tried again", async () => {
  // Amazon's answer to a conditional PUT while another to the same key is under way.
  let puts = 0;
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      await request.arrayBuffer();
      if (puts++ > 0) return new Response(null, { status: 200 });
      const xml = "<Error><Code>ConditionalRequestConflict</Code></Error>";
      return new Response(xml, { status: 409 });
    },
  );
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  );
  const client = new S3Client(url as S3Url, { accessKeyId: "a", secretAccessKey: "s" });
  const logs: string[] = [];
  const policy = { timeoutMs: 5_000, retries: 2, retryDelayMs: 1, backoff: 1 };
  await putNew(client, "n/c", new Uint8Array(1), "change 5", policy, (_, m) => logs.push(m));
  assertEquals(puts, 2);
  assertMatch(logs[0], /409 ConditionalRequestConflict .*; trying storing change 5 again/);
});

/** A store whose session token for keys "old" expired: it takes keys "new" only. */
function expiredOld(seen: string[]) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    await request.arrayBuffer();
    const id = /Credential=([^/]*)\//.exec(request.headers.get("authorization") ?? "")?.[1];
    seen.push(id ?? "");
    if (id === "new") return new Response(null, { status: 200 });
    return new Response("<Error><Code>ExpiredToken</Code></Error>", { status: 400 });
  });
}

Deno.test("S3Client: a keys' file read again while it is rewritten in place is read again at the next try", async () => {
  const seen: string[] = [];
  await using server = expiredOld(seen);
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  ) as S3Url;
  const dir = Deno.makeTempDirSync();
  try {
    const file = `${dir}/${CREDENTIALS_FILE}`;
    // A rotation script writing the file in place, a line at a time: its key id so far.
    Deno.writeTextFileSync(file, "[default]\naws_access_key_id = new\n", { mode: 0o600 });
    const old = { accessKeyId: "old", secretAccessKey: "s", sessionToken: "t" };
    const client = new S3Client(url, old, 5_000, () => loadCredentials(dir, () => undefined));
    const policy = { timeoutMs: 5_000, retries: 2, retryDelayMs: 1, backoff: 1 };
    await retrying(
      "storing change 5",
      policy,
      () => {},
      () => client.put("n/a", new Uint8Array(1)),
      {
        // The script is done by the next try.
        sleep: () => {
          Deno.writeTextFileSync(file, "aws_secret_access_key = s2\n", { append: true });
          return Promise.resolve();
        },
      },
    );
    // Its next try was signed before the file was read again: the one after took the new keys.
    assertEquals(seen, ["old", "old", "new"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("S3Client: keys written to a file others may read are not taken, and the refusal says why", async () => {
  const seen: string[] = [];
  await using server = expiredOld(seen);
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  ) as S3Url;
  const dir = Deno.makeTempDirSync();
  try {
    const file = `${dir}/${CREDENTIALS_FILE}`;
    Deno.writeTextFileSync(file, "aws_access_key_id = new\naws_secret_access_key = s2\n");
    Deno.chmodSync(file, 0o644);
    const old = { accessKeyId: "old", secretAccessKey: "s", sessionToken: "t" };
    const client = new S3Client(url, old, 5_000, () => loadCredentials(dir, () => undefined));
    const policy = { timeoutMs: 5_000, retries: 1, retryDelayMs: 1, backoff: 1 };
    const error = await assertRejects(() =>
      retrying("storing change 5", policy, () => {}, () => client.put("n/a", new Uint8Array(1)))
    );
    assertMatch(
      error.message,
      new RegExp(
        `400 ExpiredToken .*"${file}" may be read by other users \\(mode 0644\\): run chmod 600`,
      ),
    );
    assert(!seen.includes("new"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("S3Client: keys read again that S3 does not take yet (new keys reach it in seconds) are tried again", async () => {
  // Amazon's IAM: an access key just made is refused for a while, then taken.
  const seen: string[] = [];
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      await request.arrayBuffer();
      const id = /Credential=([^/]*)\//.exec(request.headers.get("authorization") ?? "")?.[1];
      seen.push(id ?? "");
      if (id === "new" && seen.filter((k) => k === "new").length > 1) {
        return new Response(null, { status: 200 });
      }
      const xml = "<Error><Code>InvalidAccessKeyId</Code></Error>";
      return new Response(xml, { status: 403 });
    },
  );
  const url = parseBackupUrl(
    `s3://b01/n?endpoint=http://127.0.0.1:${server.addr.port}&path-style=1`,
  ) as S3Url;
  const old = { accessKeyId: "old", secretAccessKey: "s" };
  const client = new S3Client(
    url,
    old,
    5_000,
    () => ({ accessKeyId: "new", secretAccessKey: "s2" }),
  );
  const policy = { timeoutMs: 5_000, retries: 3, retryDelayMs: 1, backoff: 1 };
  await retrying("storing change 5", policy, () => {}, () => client.put("n/a", new Uint8Array(1)));
  assertEquals(seen, ["old", "new", "new"]);
  // New keys refused for good (a policy that lacks the bucket) give up once the tries are spent.
  seen.length = 0;
  const refusing = new S3Client(
    url,
    old,
    5_000,
    () => ({ accessKeyId: "new2", secretAccessKey: "s" }),
  );
  const error = await assertRejects(() =>
    retrying("storing change 6", policy, () => {}, () => refusing.put("n/b", new Uint8Array(1)))
  );
  assertMatch(error.message, /gave up after 4 tries/);
});
