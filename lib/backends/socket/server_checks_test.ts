import { assertEquals, assertMatch, assertRejects } from "../../../tests/support/assert.ts";
import { withServer } from "../../../tests/support/v2_server.ts";
import { bumpStatement } from "../../../tests/support/statements.ts";
import { FileBackupReader } from "../file/reader.ts";
import { SocketBackend } from "./backend.ts";
import { DEFAULT_RETRY_POLICY } from "./options.ts";
import { ServerRefusedError } from "./connection.ts";
import { serverStatus, serverVerify } from "./server_checks.ts";
import { ServerStorage } from "../../server/storage.ts";
import type { VerifyReport } from "../../backup/verify.ts";

const POLICY = { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 5_000 };

Deno.test("serverStatus is the server's description of the node's own backup; a failed VERIFY is a refusal", async () => {
  await withServer(async ({ url, credential, nodes }) => {
    const alice = await SocketBackend.connect(url, {
      policy: POLICY,
      credential: credential("alice"),
    });
    for (const version of [1, 2, 3]) {
      await alice.append({ version, statements: [bumpStatement(version - 1)] });
    }
    alice.close();
    const dir = nodes.backupDir("alice");
    assertEquals(await serverStatus(url, credential("alice")), {
      ...new FileBackupReader(`file://${dir}`, dir).describe(),
      url,
    });
    // Bob's backup is his own, and empty.
    assertEquals((await serverStatus(url, credential("bob"))).records, 0);
    assertEquals((await serverVerify(url, credential("bob"))).restoredVersion, undefined);
    // Changes with no snapshot restore to no node's database: vars.data_version is missing.
    const error = await assertRejects(() => serverVerify(url, credential("alice")));
    assertEquals(error instanceof ServerRefusedError, true);
    assertMatch(error.message, /^the server refused VERIFY: VERIFY failed: .*data_version/);
  });
});

Deno.test("serverVerify refuses an older server's VERIFY, which read the records but restored nothing", async () => {
  // Such a server answered { ok, records, version }: its storage's verify, as it was.
  const verify = ServerStorage.prototype.verify;
  ServerStorage.prototype.verify = () =>
    Promise.resolve({ records: 3, version: 3 } as unknown as VerifyReport);
  try {
    await withServer(async ({ url, credential }) => {
      // A node with a backup: the server answers one without any itself.
      const alice = await SocketBackend.connect(url, {
        policy: POLICY,
        credential: credential("alice"),
      });
      await alice.append({ version: 1, statements: [bumpStatement(0)] });
      alice.close();
      await assertRejects(
        () => serverVerify(url, credential("alice")),
        /VERIFY does not say it restored the backup \(an older cln-backup server\?\): upgrade/,
      );
    });
  } finally {
    ServerStorage.prototype.verify = verify;
  }
});
