import { assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import { CREDENTIAL_ENV, credentialFromEnv } from "./credential.ts";

Deno.test("CLN_BACKUP_CREDENTIAL: relative to the operator's directory, a missing file named", () => {
  const dir = Deno.makeTempDirSync({ prefix: "credential-" });
  // A stand-in environment: tests run in parallel in one process.
  const vars: Record<string, string> = { INIT_CWD: dir };
  const env = { get: (name: string) => vars[name] };
  try {
    Deno.writeTextFileSync(
      `${dir}/backup.credential`,
      JSON.stringify({ node: "alice", key: "ab".repeat(32) }),
      { mode: 0o600 },
    );
    Deno.chmodSync(`${dir}/backup.credential`, 0o600);
    vars[CREDENTIAL_ENV] = "backup.credential";
    assertEquals(credentialFromEnv(env)?.path, `${dir}/backup.credential`);
    vars[CREDENTIAL_ENV] = "nocred";
    assertEquals(
      assertThrows(() => credentialFromEnv(env)).message,
      `Cannot read the node's credential: CLN_BACKUP_CREDENTIAL names "${dir}/nocred", and ` +
        `there is no such file: set it to the node's backup.credential (the line ` +
        `"server add-node" printed)`,
    );
    // restore, status and verify start no backup: a file that is not a credential says what
    // they could not do, as a missing one does.
    Deno.writeTextFileSync(`${dir}/backup.credential`, "not json");
    vars[CREDENTIAL_ENV] = "backup.credential";
    const notOne = `Cannot read the node's credential: "${dir}/backup.credential" is not a ` +
      `credential: it must hold the line "server add-node" printed, {"node": NAME, "key": HEX}`;
    assertEquals(assertThrows(() => credentialFromEnv(env)).message, notOne);
    // JSON, but no object: said alike, not as a TypeError.
    Deno.writeTextFileSync(`${dir}/backup.credential`, "null");
    assertEquals(assertThrows(() => credentialFromEnv(env)).message, notOne);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
