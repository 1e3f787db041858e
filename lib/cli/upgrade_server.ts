/**
 * `upgrade --encrypt` on a node whose backup.lock names a plain backup on a wire v2 server:
 * the backup is encrypted in place on its server, keeping every version it holds
 * (lib/backends/socket/sealed_upgrade.ts), and the plugin's key file appears beside
 * backup.lock. backup.lock keeps its URL.
 *
 * @module
 */
import { LOCK_FILE, type LockFile } from "../backup/lock_file.ts";
import { socketUrl } from "../backends/socket/backend.ts";
import { CREDENTIAL_NAME, credentialIn } from "../backends/socket/credential.ts";
import { DEFAULT_RETRY_POLICY } from "../backends/socket/options.ts";
import { serverKeyId, upgradeOnServer } from "../backends/socket/sealed_upgrade.ts";
import { removeStaleWork } from "../backends/socket/sealed_compaction.ts";
import { SCRATCH_DIR } from "../backends/plugin_scratch.ts";
import { sameBytes } from "../crypto/data_key.ts";
import { KEY_FILE, readKeyFile, writeKeyFile } from "../crypto/key_file.ts";
import { existsSync, removeIfExists } from "../fs/exists.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { checkNotRunning, refuseKeyBesidePlain } from "./node_dir.ts";
import { installPlugin, printConfigLine } from "./install_plugin.ts";
import { LAUNCHER_NAME, parseLauncher } from "./launcher.ts";
import { newEncryption } from "./new_encryption.ts";
import type { Prompt } from "./secrets.ts";
import { Exit, type Output } from "./args.ts";

const ACTION = "Cannot upgrade backup";

/**
 * Whether an `upgrade --encrypt` was killed after the server swapped the encrypted copy in
 * (`serverKey` its key's id), before it rewrote the launcher: the key file holds that key, and
 * the launcher does not grant what the plugin needs for an encrypted server backup (its
 * scratch dir).
 */
async function launcherLeftPlain(dir: string, serverKey: Uint8Array): Promise<boolean> {
  const held = await readKeyFile(dir).catch(() => undefined);
  if (held === undefined || !sameBytes(held.id, serverKey)) return false;
  // Not the whole script: one written by another Deno or install is this set-up's all the same.
  const scratch = `${Deno.realPathSync(dir)}/${SCRATCH_DIR}`;
  let text: string;
  try {
    text = Deno.readTextFileSync(`${dir}/${LAUNCHER_NAME}`);
  } catch {
    return true; // None, or none this can read: the one to write grants it.
  }
  const writes = parseLauncher(text)?.args.find((arg) => arg.startsWith("--allow-write="));
  return !writes?.slice("--allow-write=".length).split(",").includes(scratch);
}

/** Encrypts the server backup `lock` names; see the module's comment. */
export async function encryptOnServer(
  dir: string,
  lock: LockFile,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
  output: Output,
): Promise<number> {
  const url = lock.backend_url;
  const already = `"${dir}/${LOCK_FILE}" already names a cln-backup backup (${url})`;
  if (values.encrypt !== true) {
    const credential = existsSync(`${dir}/${KEY_FILE}`) ? credentialIn(dir) : undefined;
    if (credential) {
      // A key file left by an "upgrade --encrypt" cut before the server swapped its copy in.
      // A server that does not answer tells nothing: the plugin says so at its start.
      const keyId = await serverKeyId(socketUrl(url), credential, DEFAULT_RETRY_POLICY.timeoutMs)
        .catch(() => "unknown" as const);
      refuseKeyBesidePlain(dir, ACTION, url, () => keyId === undefined);
      if (keyId instanceof Uint8Array && await launcherLeftPlain(dir, keyId)) {
        throw new Error(
          `${ACTION}: ${url} is encrypted and "${dir}/${KEY_FILE}" holds its key, but the ` +
            `launcher "${dir}/${LAUNCHER_NAME}" is a plain backup's: an interrupted ` +
            `"upgrade --encrypt" got that far, and the plugin would not start with it: run ` +
            `"${cliCommand("upgrade", "--encrypt")}" again, which writes the launcher`,
        );
      }
    }
    // The launcher is there (upgrade writes it otherwise). The server may still be the Python
    // one: the node's set-up is known, not what its server holds.
    const next = existsSync(`${dir}/${CREDENTIAL_NAME}`)
      ? `("--encrypt" encrypts it on its server)`
      : `(a Python server's storage is converted on its machine, with ` +
        `"${cliCommand("upgrade", "<its url>")}")`;
    output.out(
      `"${dir}/${LOCK_FILE}" names the backup server ${url}, and the node is set up for ` +
        `cln-backup already (its launcher is there): nothing to upgrade on the node ${next}`,
    );
    return Exit.Ok;
  }
  if (typeof values.to === "string") {
    throw new Error(`${ACTION}: "${url}" is encrypted in place on its server: drop --to`);
  }
  const credential = credentialIn(dir);
  if (!credential) {
    throw new Error(
      `${ACTION}: "${dir}" has no ${CREDENTIAL_NAME}, so ${url} is a wire v1 backup, which ` +
        `cannot be encrypted on its server: ask its operator for a node ("server add-node"), ` +
        `put its line in ${CREDENTIAL_NAME} and run this again`,
    );
  }
  await checkNotRunning(dir, ACTION);
  const target = socketUrl(url);
  const timeoutMs = DEFAULT_RETRY_POLICY.timeoutMs;
  const onServer = async () => {
    try {
      return await serverKeyId(target, credential, timeoutMs);
    } catch (error) {
      throw new Error(`${ACTION}: ${(error as Error).message}`);
    }
  };
  const serverKey = await onServer();
  if (serverKey) {
    // A run killed after the server swapped the copy in, before it rewrote the launcher, left
    // the key file (written before the commit) and the plain backup's launcher, which lacks
    // what the plugin needs for an encrypted server backup (its scratch directory).
    if (!await launcherLeftPlain(dir, serverKey)) {
      output.out(`${already}, encrypted: nothing to upgrade ("rekey" changes its secret)`);
      return Exit.Ok;
    }
    const launcher = installPlugin(dir, lock, "replace", () => {});
    output.out(
      `${already}, encrypted, and "${dir}/${KEY_FILE}" holds its key: an interrupted ` +
        `"upgrade --encrypt" got that far; wrote the launcher it needs, "${launcher}"`,
    );
    printConfigLine(output, launcher);
    return Exit.Ok;
  }
  const encryption = await newEncryption(values, prompt, ACTION);
  const scratch = `${dir}/${SCRATCH_DIR}`;
  removeStaleWork(scratch);
  let committing = false;
  let before;
  try {
    before = await upgradeOnServer({
      url,
      target,
      credential,
      encryption,
      scratch,
      timeoutMs,
      commitTimeoutMs: DEFAULT_RETRY_POLICY.compactTimeoutMs,
      // Before the commit: the server never holds an encrypted backup the node has no key to.
      beforeCommit: () => {
        writeKeyFile(dir, encryption.key);
        committing = true;
      },
    });
  } catch (error) {
    const why = (error as Error).message.replace(/^Cannot \w+ \w+: /, "");
    if (!committing) throw new Error(`${ACTION}: ${why}; the backup on the server is unchanged`);
    let keyId: Uint8Array | undefined;
    try {
      keyId = await onServer();
    } catch {
      throw new Error(
        `${ACTION}: ${why}, after the copy was sent; whether the server swapped it in is ` +
          `unknown: run this again once the server is reachable (it says which it holds)`,
      );
    }
    if (!keyId || !sameBytes(keyId, encryption.key.id)) {
      removeIfExists(`${dir}/${KEY_FILE}`);
      throw new Error(`${ACTION}: ${why}; the backup on the server is unchanged`);
    }
  }
  // The launcher grants the key file and the scratch directory an encrypted server backup needs.
  const launcher = installPlugin(dir, lock, "replace", () => {});
  const held = before ? `versions ${before.firstVersion} to ${before.lastVersion}` : "";
  output.out(
    `Encrypted the backup on ${url} in place${held ? ` (${held}, every version kept)` : ""}: ` +
      `the server holds ciphertext only, and "${dir}/${KEY_FILE}" the key the plugin seals with`,
  );
  output.out(
    `Check it with "${cliCommand("verify", shellQuote(url))}" (CLN_BACKUP_CREDENTIAL=` +
      `${credential.path}), with ` +
      `the passphrase or identity`,
  );
  printConfigLine(output, launcher);
  return Exit.Ok;
}
