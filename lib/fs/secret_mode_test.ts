import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { checkSecretMode, exposedSecret } from "./secret_mode.ts";

Deno.test("secret mode: group or others' bits name the mode and the chmod; owner-only passes", () => {
  assertEquals(
    exposedSecret("the key file", "/n/backup.key", 0o100644),
    `the key file "/n/backup.key" may be read by other users (mode 0644): run chmod 600 "/n/backup.key"`,
  );
  assertEquals(exposedSecret("x", "/p", 0o640)?.includes("(mode 0640)"), true);
  assertEquals(exposedSecret("x", "/p", 0o604)?.includes("(mode 0604)"), true);
  assertEquals(exposedSecret("x", "/p", 0o100600), undefined);
  assertEquals(exposedSecret("x", "/p", 0o400), undefined);
  assertEquals(exposedSecret("x", "/p", null), undefined);
});

Deno.test("secret mode: refused in one line that starts with the action; owner-only and pipes pass", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/secret`;
    Deno.writeTextFileSync(path, "s", { mode: 0o600 });
    Deno.chmodSync(path, 0o644);
    const refused = assertThrows(() => checkSecretMode("the secret", path, "Cannot do it"));
    assertEquals(
      refused.message,
      `Cannot do it: the secret "${path}" may be read by other users (mode 0644): run ` +
        `chmod 600 "${path}"`,
    );
    Deno.chmodSync(path, 0o600);
    checkSecretMode("the secret", path, "Cannot do it");
    // A pipe keeps nothing at rest: its mode is not the secret's.
    const fifo = `${dir}/fifo`;
    new Deno.Command("mkfifo", { args: ["-m", "0644", fifo] }).outputSync();
    checkSecretMode("the secret", fifo, "Cannot do it");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
