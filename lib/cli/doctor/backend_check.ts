/**
 * The backend check: the backup opens and describes itself, is not a v1 file the plugin
 * will not append to, and a file backup is writable by lightningd's user. doctor reads local
 * files only: a backup on a server or in S3 is left to `status`, which fetches it.
 *
 * @module
 */
import type { CheckResult, Found } from "./check.ts";
import { describeBackup } from "./describe_backup.ts";
import { formatBytes } from "./format_bytes.ts";
import { allows, describeUser } from "./node_user.ts";

export function backendCheck(found: Found): CheckResult {
  const url = found.lock!.backend_url;
  if (found.url && found.url.scheme !== "file") {
    return [
      "WARN",
      `${url} is remote, and doctor reads local files only: check that it answers and how ` +
      `it stands with "cln-backup status ${url}" (it fetches the backup)`,
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
      `convert it with "deno task upgrade -- --lightning-dir ${found.dir}"`,
    ];
  }
  if (found.url?.scheme === "file") {
    const path = found.url.path;
    const unwritable = [path, ...[...Deno.readDirSync(path)].map((e) => `${path}/${e.name}`)]
      .find((p) => {
        const info = Deno.statSync(p);
        return !allows(info, found.user, info.isDirectory ? 3 : 2);
      });
    if (unwritable) {
      return [
        "FAIL",
        `"${unwritable}" is not writable by ${describeUser(found.user)}: run "chown -R ` +
        `${found.user?.uid}:${found.user?.gid} ${path}" (was init run as another user?)`,
      ];
    }
  }
  const versions = d.records === 0 ? "empty (version 0)" : `versions ${d.firstVersion} to ` +
    `${d.lastVersion}, ${d.records} records`;
  return ["OK", `${url} opens: ${d.format}, ${versions}, ${formatBytes(d.bytes)}`];
}
