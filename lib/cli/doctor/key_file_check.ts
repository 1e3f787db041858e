/**
 * The backup.key check: an encrypted backup has the plugin's key file beside backup.lock, a
 * regular file of mode 0600 that lightningd's user can read, holding the key that seals the
 * backup; a plain backup has none. Each mismatch is one the plugin refuses at start.
 *
 * @module
 */
import { keyIdOf, sameBytes } from "../../crypto/data_key.ts";
import { KEY_FILE, KEY_FILE_WHAT, keyFileBytes } from "../../crypto/key_file.ts";
import { exposedSecret } from "../../fs/secret_mode.ts";
import { readChain } from "../../format/chain.ts";
import { statIfExists } from "../../fs/exists.ts";
import type { CheckResult, Found } from "./check.ts";
import { CREDENTIAL_NAME } from "../../backends/socket/credential.ts";
import { allows, describeUser } from "./node_user.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import { cliCommand } from "../../fs/advised_command.ts";
import { lockDestinations } from "../../backends/multi/mirrors.ts";

/**
 * How the plain set-up in `found` gets encrypted: upgrade --encrypt encrypts a backup of one
 * destination and refuses a backup.lock that names copies, which a new set-up replaces.
 */
function encryptAdvice(found: Found): string {
  const dir = shellQuote(found.dir);
  let copies = false;
  try {
    const { sync, async } = lockDestinations(found.lock!);
    copies = sync.length > 1 || async.length > 0;
  } catch {
    // Malformed lists: the copies check says what is wrong.
  }
  if (!copies) {
    return `"${cliCommand("upgrade", `--lightning-dir ${dir} --encrypt`)}" encrypts it`;
  }
  return `upgrade --encrypt takes a backup of one destination: with lightningd stopped, move ` +
    `backup.lock aside and run "${cliCommand("init", `--lightning-dir ${dir} <url> --encrypt`)}" ` +
    `for an encrypted one`;
}

export function keyFileCheck(found: Found): CheckResult {
  const path = `${found.dir}/${KEY_FILE}`;
  const url = found.lock!.backend_url;
  const info = statIfExists(path);
  const scheme = found.url?.scheme;
  // A server of wire v2 (the node has its credential) may hold an encrypted backup, whose key
  // the plugin checks against the server's at each connect; S3's, against its key.json.
  const onServer = scheme === "socket" &&
    statIfExists(`${found.dir}/${CREDENTIAL_NAME}`) !== undefined;
  const remote = scheme === "s3" || onServer;
  if (remote && !info) {
    return ["OK", `none: ${url} is plain (an encrypted one would need it: status says which)`];
  }
  if (scheme !== "file" && !remote) {
    return info
      ? [
        "FAIL",
        `"${path}" holds an encryption key, but ${url} takes plain backups only: the plugin ` +
        `will not start: remove the key file, or point backup.lock at an encrypted backup`,
      ]
      : ["OK", "none: a remote backup is stored as the server keeps it"];
  }
  const keyId = found.url?.scheme === "file" ? readChain(found.url.path).keyId : undefined;
  if (keyId === undefined && !remote) {
    return info
      ? [
        "FAIL",
        `${url} is not encrypted, but "${path}" holds a key: the plugin will not start (a ` +
        `plain and an encrypted backup are never mixed): remove the key file if the backup is ` +
        `meant to be plain, or point backup.lock at the encrypted one`,
      ]
      : [
        "OK",
        `none: ${url} is not encrypted, so whoever reads it reads the node's channels ` +
        `(${encryptAdvice(found)})`,
      ];
  }
  const rewrite =
    `"${
      cliCommand("rekey", `${shellQuote(url)} --key-file ${shellQuote(found.dir)}`)
    }" writes it (it asks for ` +
    `the passphrase or identity)`;
  if (!info) {
    return [
      "FAIL",
      `${url} is encrypted and "${path}" is missing: the plugin will not start: ` +
      rewrite,
    ];
  }
  if (!Deno.lstatSync(path).isFile) {
    return ["FAIL", `"${path}" is not a regular file (a symlink?): put the key file itself there`];
  }
  const exposed = exposedSecret(KEY_FILE_WHAT, path, info.mode);
  if (exposed !== undefined) return ["FAIL", exposed];
  if (!allows(info, found.user, 4)) {
    return [
      "FAIL",
      `"${path}" is not readable by ${describeUser(found.user)}: chown it to that user`,
    ];
  }
  const bytes = keyFileBytes(Deno.readTextFileSync(path));
  if (!bytes) return ["FAIL", `"${path}" holds no cln-backup data key: ${rewrite}`];
  if (keyId === undefined) {
    // Remote: the key id is in the backup, which the plugin checks at start (offline here).
    return [
      "OK",
      `holds a key, mode 0600, for ${url}: the plugin checks it against the backup's at ` +
      `start (a plain one is refused); keep the passphrase or age identity off this machine`,
    ];
  }
  if (!sameBytes(keyIdOf(bytes), keyId)) {
    return ["FAIL", `"${path}" holds another backup's key, not ${url}'s: ${rewrite}`];
  }
  return [
    "OK",
    `holds ${url}'s key, mode 0600: whoever reads it reads the backup, as with the database ` +
    `itself; keep the passphrase or age identity off this machine`,
  ];
}
