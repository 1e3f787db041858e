/**
 * rekey under an operator's stress: two runs on one backup at once (two terminals), the rerun
 * of one killed after it replaced key.json but before it said so, a --key-file it cannot
 * write, and the Python plugin's .dbak given by mistake.
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { BufferedOutput } from "./support/cli_testing.ts";
import { makeEncryptedBackup, PASSPHRASE } from "./support/encrypted.ts";
import { rekey } from "../lib/cli/rekey.ts";
import { unlockDir } from "../lib/cli/unlock.ts";
import { ageRecipientOf, newAgeIdentity } from "../lib/crypto/primitives.ts";
import { sameBytes } from "../lib/crypto/data_key.ts";
import { PRE_4090_BACKUP } from "./support/fixtures.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";

const noTerminal = () => Promise.resolve(undefined);

async function withBackup(
  body: (base: string, url: string, secret: (text: string) => string) => Promise<void>,
): Promise<void> {
  const base = Deno.makeTempDirSync({ prefix: "rekey-" });
  try {
    await makeEncryptedBackup(`${base}/backup`);
    let files = 0;
    const secret = (text: string) => {
      const path = `${base}/secret-${++files}`;
      Deno.writeTextFileSync(path, `${text}\n`, { mode: 0o600 });
      return path;
    };
    await body(base, `file://${base}/backup`, secret);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
}

async function run(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const output = new BufferedOutput();
  const code = await rekey(args, output, noTerminal);
  return { code, out: output.stdout, err: output.stderr };
}

/** Whether the passphrase in `file` opens the key of the backup in `dir`. */
async function opens(dir: string, file: string): Promise<boolean> {
  try {
    return (await unlockDir(dir, { "passphrase-file": file }, noTerminal)) !== undefined;
  } catch {
    return false;
  }
}

Deno.test("two rekeys of one backup at once: one is refused, naming the other; the other's secret opens it", () =>
  withBackup(async (base, url, secret) => {
    const old = secret(PASSPHRASE);
    const [two, three] = [secret("second passphrase"), secret("third passphrase")];
    const runs = await Promise.all([
      run([url, "--passphrase-file", old, "--new-passphrase-file", two]),
      run([url, "--passphrase-file", old, "--new-passphrase-file", three]),
    ]);
    assertEquals(runs.map((r) => r.code).sort(), [0, 1], JSON.stringify(runs));
    const refused = runs.find((r) => r.code === 1)!;
    assertEquals(refused.err.length, 1, refused.err.join("\n"));
    assertMatch(
      refused.err[0],
      /^Cannot rekey backup: another rekey is running on ".*\/backup" .*: wait for it to finish, then run this again; nothing was changed$/,
    );
    const won = runs[0].code === 0 ? two : three;
    const lost = won === two ? three : two;
    assertEquals(
      [await opens(`${base}/backup`, won), await opens(`${base}/backup`, lost)],
      [true, false],
    );
    // Once it is done, the next rekey runs.
    const after = await run([url, "--passphrase-file", won, "--new-passphrase-file", lost]);
    assertEquals(after.code, 0, after.err.join("\n"));
    assertEquals(await opens(`${base}/backup`, lost), true);
  }));

Deno.test("a rekey killed before or after it replaced key.json: the same command run again succeeds", () =>
  withBackup(async (base, url, secret) => {
    const dir = `${base}/backup`;
    const old = secret(PASSPHRASE);
    const fresh = secret("second passphrase");
    const args = [url, "--passphrase-file", old, "--new-passphrase-file", fresh];
    // Killed before its rename: key.json is the old one, its temporary file left beside it.
    Deno.writeTextFileSync(`${dir}/key.json.tmp`, '{"half": ');
    const key = await unlockDir(dir, { "passphrase-file": old }, noTerminal);
    const first = await run(args);
    assertEquals(first.code, 0, first.err.join("\n"));
    // Killed after its rename, before it said so: the operator runs the same command again.
    const again = await run(args);
    assertEquals(again.code, 0, again.err.join("\n"));
    assertMatch(again.out.join("\n"), /new passphrase given opens it.*earlier rekey/);
    assertEquals([await opens(dir, fresh), await opens(dir, old)], [true, false]);
    const now = await unlockDir(dir, { "passphrase-file": fresh }, noTerminal);
    assertEquals(sameBytes(now!.bytes, key!.bytes), true);
    // A wrong secret, no earlier rekey to explain it: one line that says what may open it.
    const wrong = await run([url, "--passphrase-file", old, "--new-passphrase-file", old]);
    assertEquals(wrong.code, 1);
    assertEquals(wrong.err.length, 1, wrong.err.join("\n"));
    assertMatch(wrong.err[0], /does not open .*an earlier rekey of it was interrupted/);
    assertEquals(await opens(dir, fresh), true);
    // A recipient alone cannot open it; key.json already wrapped for it alone is the same end.
    const identity = await newAgeIdentity();
    const recipient = await ageRecipientOf(identity);
    const toAge = [url, "--passphrase-file", fresh, "--new-recipient", recipient];
    assertEquals((await run(toAge)).code, 0);
    const rerun = await run(toAge);
    assertEquals(rerun.code, 0, rerun.err.join("\n"));
    assertMatch(rerun.out.join("\n"), /already wrapped for .*age1\w+ alone.*earlier rekey/);
  }));

Deno.test("rekey with a --key-file it cannot write changes nothing: key.json keeps its wraps", () =>
  withBackup(async (base, url, secret) => {
    const dir = `${base}/backup`;
    const old = secret(PASSPHRASE);
    const fresh = secret("second passphrase");
    const before = Deno.readFileSync(`${dir}/key.json`);
    for (const keyDir of [`${base}/no-such-dir`, old]) {
      const failed = await run([
        url,
        "--passphrase-file",
        old,
        "--new-passphrase-file",
        fresh,
        "--key-file",
        keyDir,
      ]);
      assertEquals(failed.code, 1, failed.out.join("\n"));
      assertEquals(failed.err.length, 1, failed.err.join("\n"));
      assertMatch(failed.err[0], /^Cannot rekey backup: .*; nothing was changed$/);
      assertEquals(failed.out, []);
      assertEquals(Deno.readFileSync(`${dir}/key.json`), before);
    }
    // A directory where the key file cannot be written (a directory in its place).
    Deno.mkdirSync(`${base}/node/backup.key/inside`, { recursive: true });
    const args = ["--passphrase-file", old, "--new-passphrase-file", fresh];
    const failed = await run([url, ...args, "--key-file", `${base}/node`]);
    assertEquals(failed.code, 1, failed.out.join("\n"));
    assertEquals(failed.out, []);
    assertEquals(Deno.readFileSync(`${dir}/key.json`), before);
  }));

Deno.test("rekey of a .dbak says it is the Python plugin's plain file and how to encrypt it", () =>
  withBackup(async (base, _url, secret) => {
    Deno.copyFileSync(PRE_4090_BACKUP, `${base}/node.dbak`);
    const before = Deno.readFileSync(`${base}/node.dbak`);
    const refused = await run([
      `file://${base}/node.dbak`,
      "--new-passphrase-file",
      secret("second passphrase"),
    ]);
    assertEquals(refused.code, 1);
    assertEquals(refused.err, [
      `Cannot rekey backup: "${base}/node.dbak" is not encrypted: "cln-backup upgrade --encrypt" ` +
      `makes an encrypted copy of it`,
    ]);
    assertEquals(Deno.readFileSync(`${base}/node.dbak`), before);
  }));

Deno.test("a plugin that starts while a rekey writes key.json leaves the rekey's temporary file: the rekey succeeds, and its secret opens the backup", () =>
  withBackup(async (base, url, secret) => {
    const dir = `${base}/backup`;
    const old = secret(PASSPHRASE);
    const fresh = secret("second passphrase");
    const key = await unlockDir(dir, { "passphrase-file": old }, noTerminal);
    const rename = Deno.renameSync;
    let started = false;
    // The plugin opens the backup between the rekey's write of key.json.tmp and its rename.
    Deno.renameSync = (from, to) => {
      if (String(from).endsWith("/key.json.tmp") && !started) {
        started = true;
        FileBackend.open(url, dir, { key }).close();
      }
      rename(from, to);
    };
    let rekeyed;
    try {
      rekeyed = await run([url, "--passphrase-file", old, "--new-passphrase-file", fresh]);
    } finally {
      Deno.renameSync = rename;
    }
    assertEquals([started, rekeyed.code], [true, 0], rekeyed.err.join("\n"));
    assertEquals([await opens(dir, fresh), await opens(dir, old)], [true, false]);
  }));
