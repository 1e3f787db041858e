/**
 * The secret-file rule (lib/fs/secret_mode.ts) for files the commands must read: another
 * user's file readable through the group is theirs to keep, and the chmod names the file.
 */
import { assertEquals } from "./support/assert.ts";
import { givenPassphrase, PASSPHRASE_ENV } from "../lib/cli/secrets.ts";

Deno.test("a passphrase file owned by root, readable by the operator's group, is taken (ssh's rule: only the user's own files)", () => {
  if (Deno.uid() !== 0) return; // Needs chown.
  const dir = Deno.makeTempDirSync({ prefix: "secret-owner-" });
  try {
    // Provisioned by root for the service's group (root:bitcoin 0640, a docker secret with
    // gid set): the operator cannot chmod it, and a chmod 600 by root locks them out.
    const path = `${dir}/pass`;
    Deno.writeTextFileSync(path, "correct horse\n", { mode: 0o600 });
    Deno.chownSync(path, 65534, 0); // owned by another user than the one reading it
    Deno.chmodSync(path, 0o640);
    let result: string;
    try {
      result = givenPassphrase(path, PASSPHRASE_ENV) ?? "";
    } catch (error) {
      result = (error as Error).message;
    }
    assertEquals(result, "correct horse");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--passphrase-file /dev/stdin fed from a 0644 file: the fix named is not chmod of /dev/stdin", () => {
  const dir = Deno.makeTempDirSync({ prefix: "secret-owner-" });
  try {
    const path = `${dir}/pass`;
    Deno.writeTextFileSync(path, "correct horse\n");
    Deno.chmodSync(path, 0o644);
    const code = `import { givenPassphrase } from "${new URL(
      "../lib/cli/secrets.ts",
      import.meta.url,
    )}";
try { console.log(givenPassphrase("/dev/stdin", "CLN_BACKUP_PASSPHRASE")); } catch (e) { console.log(e.message); }`;
    const child = new Deno.Command("sh", {
      args: ["-c", `"${Deno.execPath()}" eval '${code}' < "${path}"`],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    const said = new TextDecoder().decode(child.stdout).trim();
    // Either taken (stdin is where it came from) or refused naming the file really read.
    assertEquals(said === "correct horse" || !said.includes(`chmod 600 "/dev/stdin"`), true, said);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
