/**
 * The backup.key check: an encrypted backup has the plugin's key file beside backup.lock, a
 * regular file of mode 0600 that lightningd's user can read, holding the key that seals the
 * backup; a plain backup has none. Each mismatch is one the plugin refuses at start.
 *
 * @module
 */
import { keyIdOf, sameBytes } from "../../crypto/data_key.ts";
import { KEY_FILE, keyFileBytes } from "../../crypto/key_file.ts";
import { readChain } from "../../format/chain.ts";
import { statIfExists } from "../../fs/exists.ts";
import type { CheckResult, Found } from "./check.ts";
import { CREDENTIAL_NAME } from "../../backends/socket/credential.ts";
import { allows, describeUser } from "./node_user.ts";

export function keyFileCheck(found: Found): CheckResult {
  const path = `${found.dir}/${KEY_FILE}`;
  const url = found.lock!.backend_url;
  const info = statIfExists(path);
  // A server of wire v2 (the node has its credential) may hold an encrypted backup, whose key
  // the plugin checks against the server's at each connect.
  const onServer = found.url?.scheme === "socket" &&
    statIfExists(`${found.dir}/${CREDENTIAL_NAME}`) !== undefined;
  if (onServer && !info) {
    return ["OK", `none: ${url} is plain (an encrypted one would need it: status says which)`];
  }
  if (found.url?.scheme !== "file" && !onServer) {
    return info
      ? [
        "FAIL",
        `"${path}" holds an encryption key, but ${url} takes plain backups only: the plugin ` +
        `will not start: remove the key file, or point backup.lock at the encrypted file backup`,
      ]
      : ["OK", "none: a remote backup is stored as the server or bucket keeps it"];
  }
  const keyId = found.url?.scheme === "file" ? readChain(found.url.path).keyId : undefined;
  if (keyId === undefined && !onServer) {
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
        `("cln-backup upgrade --encrypt" encrypts it)`,
      ];
  }
  const rewrite = `"cln-backup rekey ${url} --key-file ${found.dir}" writes it (it asks for ` +
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
  const mode = (info.mode ?? 0) & 0o777;
  if ((mode & 0o077) !== 0) {
    return [
      "FAIL",
      `"${path}" may be read by other users (mode ${mode.toString(8).padStart(4, "0")}), and ` +
      `it opens the whole backup: run "chmod 600 ${path}"`,
    ];
  }
  if (!allows(info, found.user, 4)) {
    return [
      "FAIL",
      `"${path}" is not readable by ${describeUser(found.user)}: chown it to that user`,
    ];
  }
  const bytes = keyFileBytes(Deno.readTextFileSync(path));
  if (!bytes) return ["FAIL", `"${path}" holds no cln-backup data key: ${rewrite}`];
  if (keyId === undefined) {
    return [
      "OK",
      `holds a key, mode 0600, for ${url} over wire v2: the plugin checks it against the ` +
      `server's backup at each connect (a plain one is refused); keep the passphrase or age ` +
      `identity off this machine`,
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
