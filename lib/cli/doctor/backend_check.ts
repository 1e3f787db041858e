/**
 * The backend check: the backup opens and describes itself, is not a v1 file the plugin
 * will not append to, and a file backup is writable by lightningd's user. doctor reads local
 * files only: a backup on a server or in S3 is left to `status`, which fetches it; but the CA
 * file a `socket+tls:…?ca=PATH` or `s3://…&ca=PATH` URL names must be readable by lightningd's
 * user and hold a certificate, or the plugin cannot connect.
 *
 * @module
 */
import { CREDENTIAL_NAME } from "../../backends/socket/credential.ts";
import { CREDENTIALS_FILE } from "../../backends/s3/credentials.ts";
import { existsSync } from "../../fs/exists.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import { cliCommand } from "../../fs/advised_command.ts";
import type { CheckResult, Found } from "./check.ts";
import { describeBackup } from "./describe_backup.ts";
import { formatBytes } from "./format_bytes.ts";
import { backupAccessProblem } from "./backup_access.ts";
import { allows, describeUser, unsearchableAbove } from "./node_user.ts";

/** Why lightningd's user cannot use the CA file `path`, or `undefined` when it can. */
function caFileProblem(path: string, found: Found): string | undefined {
  let text: string;
  try {
    const info = Deno.statSync(path);
    if (!info.isFile) return `"${path}" is not a file`;
    // Every directory above it must be searchable too.
    const blocked = unsearchableAbove(path, found.user);
    if (blocked) return `"${blocked}" is not searchable by ${describeUser(found.user)}`;
    if (!allows(info, found.user, 4)) {
      return `"${path}" is not readable by ${describeUser(found.user)}`;
    }
    text = Deno.readTextFileSync(path);
  } catch (error) {
    return `cannot read "${path}": ${(error as Error).message}`;
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    return `"${path}" holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`;
  }
  return undefined;
}

export function backendCheck(found: Found): CheckResult {
  const url = found.lock!.backend_url;
  const ca = found.url?.scheme === "socket"
    ? found.url.tls?.ca
    : found.url?.scheme === "s3"
    ? found.url.ca
    : undefined;
  const problem = ca === undefined ? undefined : caFileProblem(ca, found);
  if (problem !== undefined) {
    return [
      "FAIL",
      `the CA file the URL's ca= names, which the server's certificate must chain to, is ` +
      `unusable: ${problem}: put the CA's PEM certificates there, readable by lightningd's user`,
    ];
  }
  if (found.url && found.url.scheme !== "file") {
    // The command as the operator types it: a server's credential (wire v2) and S3 keys go
    // by the environment.
    const credential = `${found.dir}/${CREDENTIAL_NAME}`;
    const status = found.url.scheme === "socket" && existsSync(credential)
      ? `CLN_BACKUP_CREDENTIAL=${shellQuote(credential)} ${cliCommand("status", shellQuote(url))}`
      : found.url.scheme === "s3"
      ? `AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… ${cliCommand("status", shellQuote(url))}`
      : cliCommand("status", shellQuote(url));
    const keys = found.url.scheme === "s3" ? ` (the keys in ${CREDENTIALS_FILE})` : "";
    return [
      "WARN",
      `${url} is remote, and doctor reads local files only: check that it answers and how ` +
      `it stands with "${status}"${keys}`,
    ];
  }
  try {
    found.description = describeBackup(url);
  } catch (error) {
    return ["FAIL", `${(error as Error).message}`];
  }
  const d = found.description;
  if (d.format.startsWith("v1")) {
    return [
      "FAIL",
      `${url} is a v1 backup of the Python plugin, which this plugin does not append to: ` +
      `convert it with "${cliCommand("upgrade", `--lightning-dir ${shellQuote(found.dir)}`)}"`,
    ];
  }
  const access = found.url?.scheme === "file"
    ? backupAccessProblem(found.url.path, found)
    : undefined;
  if (access !== undefined) return ["FAIL", access];
  const versions = d.records === 0 ? "empty (version 0)" : `versions ${d.firstVersion} to ` +
    `${d.lastVersion}, ${d.records} records`;
  return ["OK", `${url} opens: ${d.format}, ${versions}, ${formatBytes(d.bytes)}`];
}
