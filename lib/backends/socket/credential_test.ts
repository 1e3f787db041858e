import { assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import { CREDENTIAL_ENV, credentialFromEnv } from "./credential.ts";

Deno.test("CLN_BACKUP_CREDENTIAL: relative to the operator's directory, a missing file named", () => {
  const dir = Deno.makeTempDirSync({ prefix: "credential-" });
  const saved = [CREDENTIAL_ENV, "INIT_CWD"].map((name) => [name, Deno.env.get(name)] as const);
  try {
    Deno.env.set("INIT_CWD", dir);
    Deno.writeTextFileSync(
      `${dir}/backup.credential`,
      JSON.stringify({ node: "alice", key: "ab".repeat(32) }),
      { mode: 0o600 },
    );
    Deno.chmodSync(`${dir}/backup.credential`, 0o600);
    Deno.env.set(CREDENTIAL_ENV, "backup.credential");
    assertEquals(credentialFromEnv()?.path, `${dir}/backup.credential`);
    Deno.env.set(CREDENTIAL_ENV, "nocred");
    assertEquals(
      assertThrows(() => credentialFromEnv()).message,
      `Cannot read the node's credential: CLN_BACKUP_CREDENTIAL names "${dir}/nocred", and ` +
        `there is no such file: set it to the node's backup.credential (the line ` +
        `"server add-node" printed)`,
    );
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
    Deno.removeSync(dir, { recursive: true });
  }
});
