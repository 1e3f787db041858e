/**
 * Tests against RGW skip, saying why, where its gateway cannot start: a real S3 test file run
 * with the gateway's port already taken (the start's real failure path: radosgw exits on
 * the bind) ignores every test and prints why.
 */
import { assert, assertMatch } from "./support/assert.ts";
import { rgwMissing } from "./support/rgw.ts";

const E2E = new URL("./s3_e2e_test.ts", import.meta.url).pathname;

Deno.test("an S3 test file whose RGW cannot start skips every test and says why", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--no-check", E2E],
      env: {
        CLN_BACKUP_TEST_RGW_PORT: String(taken.addr.port),
        CLN_BACKUP_REQUIRE_RGW: "",
        NO_COLOR: "1",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout) +
      new TextDecoder().decode(output.stderr);
    assert(output.success, text);
    assertMatch(text, /ok \| 0 passed \| 0 failed \| [1-9]\d* ignored/);
    assertMatch(
      text,
      rgwMissing === undefined
        // Ceph's own reason ("Address already in use") when radosgw wrote it before exiting.
        ? /Cannot start Ceph RGW here: .*rgw\.sh: radosgw exited: .+\nSkipping the tests against a real S3 server/
        : /Ceph RGW is not installed .*: skipping the tests against a real S3 server/,
    );
  } finally {
    taken.close();
  }
});
