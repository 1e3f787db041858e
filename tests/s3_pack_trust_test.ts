/**
 * A pack whose bytes S3 changed never costs the change objects that hold its records
 * (lib/backends/s3/packer.ts).
 *
 * @module
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { type Rgw } from "./support/rgw.ts";
import { connectLogged } from "./support/s3_backup.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { S3BackupReader } from "../lib/backends/s3/reader.ts";
import type { S3Backend } from "../lib/backends/s3/backend.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { listBackup } from "../lib/backends/s3/layout.ts";
import { S3Client } from "../lib/backends/s3/client.ts";
import type { DataKey } from "../lib/crypto/data_key.ts";

const FAST = { timeoutMs: 5_000, retries: 2, retryDelayMs: 50, backoff: 2 };

function statements(v: number): string[] {
  const bump = `UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = ${
    v - 1
  }`;
  return v === 1
    ? [
      "CREATE TABLE vars (name TEXT, intval INTEGER)",
      "INSERT INTO vars VALUES ('data_version', 0)",
      bump,
    ]
    : [`INSERT INTO vars VALUES ('n${v}', ${v})`, bump];
}

async function append(backend: S3Backend, v: number): Promise<void> {
  await backend.append({ version: v, statements: statements(v) });
  await backend.settle();
}

/** The versions a restore of `url` replays, in order. */
async function restoredVersions(s: Rgw, url: string, key?: DataKey): Promise<number[]> {
  const unlock = key && (() => Promise.resolve(key));
  const reader = await S3BackupReader.fetch(url, s.credentials, FAST, undefined, unlock);
  try {
    return [...reader.entries()].filter((e) => e.kind === "change").map((e) =>
      (e as { version: number }).version
    );
  } finally {
    reader.close();
  }
}

const upTo = (last: number) => Array.from({ length: last }, (_, i) => i + 1);

/** The client's next pack stores one byte other than sent: S3 damaged it on the way in. */
function damageNextPack(client: S3Client): Promise<string> {
  const put = client.put.bind(client);
  return new Promise((stored) => {
    client.put = async (key, body, options) => {
      if (!key.includes("/pack-")) return await put(key, body, options);
      client.put = put;
      const damaged = body.slice();
      damaged[damaged.length - 1] ^= 1;
      await put(key, damaged, options);
      stored(key);
    };
  });
}

rgwTest(
  "S3 packs: one S3 stored other bytes of is deleted, and a restore reads its change objects",
  async () => {
    const s = sharedRgw();
    const url = s.url(await s.bucket());
    await createS3Backup(url, s.credentials, undefined, FAST);
    const options = { credentials: s.credentials, policy: FAST, packer: { every: 4 } };
    const { backend, logs } = await connectLogged(url, options);
    const damaged = damageNextPack(backend.client);
    for (let v = 1; v <= 5; v++) await append(backend, v);
    const key = await damaged;
    assertMatch(logs.join("\n"), /reads back other bytes than were sent; keeping the changes/);
    assertEquals(backend.failure, undefined);
    backend.close();
    const left = await listBackup(s.client(url));
    assertEquals(left.filter((e) => e.key === key), []);
    assertEquals(left.filter((e) => e.kind === "change").map((e) => e.key).length, 5);
    assertEquals(await restoredVersions(s, url), upTo(5));
  },
);
