import { assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { createS3Backup } from "./create.ts";

Deno.test("createS3Backup: a store that overwrites despite If-None-Match: * gets no backup, and keeps no claim", async () => {
  // A store that takes every PUT, conditional or not, as some S3-compatible ones do.
  const stored = new Set<string>();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      await request.arrayBuffer();
      const path = new URL(request.url).pathname;
      if (request.method === "GET") {
        return new Response(
          `<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>`,
        );
      }
      if (request.method === "PUT") stored.add(path);
      if (request.method === "DELETE") stored.delete(path);
      return new Response(null, { status: 200 });
    },
  );
  const endpoint = `http://127.0.0.1:${server.addr.port}`;
  const url = `s3://b01/n?endpoint=${endpoint}&path-style=1`;
  const error = await assertRejects(() =>
    createS3Backup(url, { accessKeyId: "a", secretAccessKey: "s" })
  );
  assertEquals(
    error.message,
    `Cannot create backup: the S3 service at ${endpoint} stored an object over one already ` +
      `there despite If-None-Match: *, which it does not honour: the backup needs it so that no ` +
      `change object is ever overwritten (by a second node on the prefix, or a retry): use a ` +
      `store that honours conditional writes (Amazon S3 and Ceph RGW do)`,
  );
  assertEquals([...stored], []);
});
