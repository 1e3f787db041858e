import { assertMatch, assertRejects } from "../../../tests/support/assert.ts";
import { S3Client } from "./client.ts";
import { parseBackupUrl } from "../url.ts";
import type { S3Url } from "./s3_url.ts";

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
