/**
 * Where an S3 backup's keys come from: the file `backup-s3.credentials` beside `backup.lock`
 * in the lightning dir, when a command knows that dir and the file is there, in the AWS
 * shared credentials format (`[default]`, `aws_access_key_id = …`); else the usual
 * `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) environment
 * variables. lightningd starts the plugin
 * with its own environment, so the file is how a node's plugin gets its keys; it must be
 * readable by its owner only (mode 0600), as a key readable by others is a key leaked: the
 * commands and the plugin refuse one others may read.
 *
 * @module
 */
import type { S3Credentials } from "./client.ts";
import { existsSync } from "../../fs/exists.ts";
import { checkSecretMode } from "../../fs/secret_mode.ts";
import { readableEnv } from "../../fs/readable_env.ts";

export const CREDENTIALS_FILE = "backup-s3.credentials";
/** How messages name it. */
export const CREDENTIALS_WHAT = "the S3 keys' file";
const ACTION = "Cannot reach the S3 backup";
export const CREDENTIAL_ENV = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/**
 * Reads the keys from `<dir>/backup-s3.credentials` when `dir` is given and it is there (the
 * keys the plugin uses), else from `env`. Refuses a file others may read.
 */
export function loadCredentials(
  dir: string | undefined,
  env: (name: string) => string | undefined = readableEnv.get,
): S3Credentials {
  const file = dir === undefined ? undefined : `${dir}/${CREDENTIALS_FILE}`;
  if (file !== undefined && existsSync(file)) return readCredentialsFile(file);
  const accessKeyId = env("AWS_ACCESS_KEY_ID");
  const secretAccessKey = env("AWS_SECRET_ACCESS_KEY");
  if (accessKeyId && secretAccessKey) {
    const sessionToken = env("AWS_SESSION_TOKEN");
    return sessionToken ? { accessKeyId, secretAccessKey, sessionToken } : {
      accessKeyId,
      secretAccessKey,
    };
  }
  if (file === undefined) {
    throw new Error(
      `Cannot reach the S3 backup: no keys: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
    );
  }
  return readCredentialsFile(file);
}

/**
 * Checks that the plugin will find its keys in `<dir>/backup-s3.credentials`, all it reads
 * (its launcher grants no environment): for the commands that set a node up.
 */
export function checkPluginCredentials(dir: string, action: string): void {
  const path = `${dir}/${CREDENTIALS_FILE}`;
  try {
    Deno.lstatSync(path);
  } catch {
    throw new Error(
      `${action}: the plugin reads its S3 keys from "${path}" only, and there is none: ` +
        `write aws_access_key_id = … and aws_secret_access_key = … there (mode 0600), then ` +
        `run this again`,
    );
  }
  try {
    readCredentialsFile(path);
  } catch (error) {
    const why = (error as Error).message.replace(/^Cannot reach the S3 backup: /, "");
    throw new Error(`${action}: the plugin reads its S3 keys from "${path}": ${why}`);
  }
}

function readCredentialsFile(path: string): S3Credentials {
  let text: string;
  try {
    const info = Deno.statSync(path);
    if (!info.isFile) throw new Deno.errors.InvalidData("not a regular file");
    checkSecretMode(CREDENTIALS_WHAT, path, ACTION, info);
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      // The plugin's launcher grants no environment: the file is its one way.
      const granted = Deno.permissions.querySync({ name: "env", variable: "AWS_ACCESS_KEY_ID" });
      const env = granted.state === "granted"
        ? "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
        : "";
      throw new Error(
        `${ACTION}: no keys: ${env}write them to "${path}" (mode 0600) as ` +
          `aws_access_key_id = … and aws_secret_access_key = …`,
      );
    }
    if ((error as Error).message.startsWith(ACTION)) throw error;
    throw new Error(`Cannot reach the S3 backup: cannot read "${path}": ${error}`);
  }
  const values = parseIni(text);
  const accessKeyId = values.get("aws_access_key_id");
  const secretAccessKey = values.get("aws_secret_access_key");
  if (!accessKeyId || !secretAccessKey) {
    throw new Error(
      `Cannot reach the S3 backup: "${path}" lacks aws_access_key_id or ` +
        `aws_secret_access_key in its [default] section (or before any section)`,
    );
  }
  const sessionToken = values.get("aws_session_token");
  return sessionToken ? { accessKeyId, secretAccessKey, sessionToken } : {
    accessKeyId,
    secretAccessKey,
  };
}

/** The `name = value` lines before any section and in `[default]`. */
function parseIni(text: string): Map<string, string> {
  const values = new Map<string, string>();
  let section = "default";
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[\s*([^\]]*?)\s*\]$/.exec(line);
    if (header) {
      section = header[1];
      continue;
    }
    const pair = /^([A-Za-z_]+)\s*=\s*(.*)$/.exec(line);
    if (pair && section === "default") values.set(pair[1].toLowerCase(), pair[2]);
  }
  return values;
}
