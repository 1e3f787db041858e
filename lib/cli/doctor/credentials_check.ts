/**
 * The credentials check: the plugin finds what its remote destinations need beside
 * backup.lock, the only place it reads them: `backup-s3.credentials` for S3 (its launcher
 * grants no environment), and `backup.credential` for a v2 backup server (without it, the
 * plugin speaks the Python plugin's wire v1: no authentication, no encryption).
 *
 * @module
 */
import { lockDestinations } from "../../backends/multi/mirrors.ts";
import { checkPluginCredentials, CREDENTIALS_FILE } from "../../backends/s3/credentials.ts";
import { CREDENTIAL_NAME, credentialIn } from "../../backends/socket/credential.ts";
import { parseBackupUrl } from "../../backends/url.ts";
import { statIfExists } from "../../fs/exists.ts";
import type { CheckResult, Found } from "./check.ts";
import { allows, describeUser } from "./node_user.ts";

/** A file the plugin reads: a failure, or `undefined` when lightningd's user may read it. */
function readable(found: Found, path: string): CheckResult | undefined {
  const info = statIfExists(path);
  if (info && !allows(info, found.user, 4)) {
    return [
      "FAIL",
      `"${path}" is not readable by ${describeUser(found.user)}: chown it to that user`,
    ];
  }
}

function s3Keys(found: Found): CheckResult {
  try {
    checkPluginCredentials(found.dir, "the plugin cannot reach S3");
  } catch (error) {
    return ["FAIL", (error as Error).message];
  }
  return readable(found, `${found.dir}/${CREDENTIALS_FILE}`) ??
    ["OK", `${CREDENTIALS_FILE} holds keys, readable by its owner only`];
}

function serverCredential(found: Found): CheckResult {
  const path = `${found.dir}/${CREDENTIAL_NAME}`;
  try {
    if (!credentialIn(found.dir)) {
      return [
        "WARN",
        `no "${path}": the plugin speaks wire v1 to its server, with no authentication and ` +
        `no encryption: on the server run "server add-node NAME" and put the line it prints ` +
        `in "${path}" (mode 0600)`,
      ];
    }
  } catch (error) {
    return ["FAIL", (error as Error).message.replace(/^Cannot start backup: /, "")];
  }
  return readable(found, path) ??
    ["OK", `${CREDENTIAL_NAME} holds this node's key, readable by its owner only`];
}

export function credentialsCheck(found: Found): CheckResult {
  // Asynchronous copies too: one without its keys fails on and on while the node runs.
  const { sync, async } = lockDestinations(found.lock!);
  const schemes = new Set([...sync, ...async].map((url) => parseBackupUrl(url).scheme));
  const results = [
    ...(schemes.has("s3") ? [s3Keys(found)] : []),
    ...(schemes.has("socket") ? [serverCredential(found)] : []),
  ];
  if (results.length === 0) return ["OK", "none needed: no remote destination"];
  const worst = results.find(([level]) => level === "FAIL") ??
    results.find(([level]) => level === "WARN");
  return worst ?? ["OK", results.map(([, message]) => message).join("; ")];
}
