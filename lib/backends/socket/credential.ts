/**
 * A node's credential for a v2 backup server: `backup.credential` beside `backup.lock`, the
 * one line `server add-node` prints, `{"node": NAME, "key": HEX}`, mode 0600. Its presence
 * makes the `socket:` backend speak wire v2; a file others may read is refused (by the
 * commands, and by the plugin at start), since the key lets anyone who holds it read and write
 * the node's backup.
 *
 * @module
 */
import { type EnvReader, userPath } from "../../fs/user_path.ts";
import { keyFromText } from "../../wire/handshake.ts";
import { parseBackupUrl } from "../url.ts";
import { checkSecretMode } from "../../fs/secret_mode.ts";
import { CREDENTIAL_NAME } from "./credential_name.ts";

export { CREDENTIAL_NAME };
/** How messages name it. */
export const CREDENTIAL_WHAT = "the server credential";
/** For the CLI's restore, status and verify of a v2 backup: the credential file's path. */
export const CREDENTIAL_ENV = "CLN_BACKUP_CREDENTIAL";

/** A node's credential for a v2 backup server, as read from its file. */
export interface NodeCredential {
  /** The node's name on the server. */
  node: string;
  /** The node's key, which it proves it holds at each connect. */
  key: Uint8Array;
  /** The file it was read from. */
  path: string;
}

/**
 * Reads the credential at `path`; throws a one-line error, starting with `action`, saying what
 * to fix (one others may read is refused).
 */
export function readCredential(path: string, action = "Cannot start backup"): NodeCredential {
  checkSecretMode(CREDENTIAL_WHAT, path, action);
  let parsed: { node?: unknown; key?: unknown };
  try {
    parsed = JSON.parse(Deno.readTextFileSync(path)) ?? {}; // "null" is JSON too.
  } catch {
    parsed = {};
  }
  const key = typeof parsed.key === "string" ? keyFromText(parsed.key) : undefined;
  if (typeof parsed.node !== "string" || !key) {
    throw new Error(
      `${action}: "${path}" is not a credential: it must hold the line ` +
        `"server add-node" printed, {"node": NAME, "key": HEX}`,
    );
  }
  return { node: parsed.node, key, path };
}

/**
 * The credential in `dir` (the lightning dir), or `undefined` when there is none; one others
 * may read is refused, as in {@linkcode readCredential}.
 */
export function credentialIn(dir: string): NodeCredential | undefined {
  const path = `${dir}/${CREDENTIAL_NAME}`;
  try {
    Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return readCredential(path);
}

/**
 * The credential {@linkcode CREDENTIAL_ENV} names, for the CLI; `undefined` when unset. A
 * relative path resolves against the operator's directory (`deno task` passes it in
 * INIT_CWD), as backup-cli's grant for it does.
 */
export function credentialFromEnv(env: EnvReader = Deno.env): NodeCredential | undefined {
  const named = env.get(CREDENTIAL_ENV);
  if (!named) return undefined;
  const path = userPath(named, env);
  try {
    Deno.statSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error(
      `Cannot read the node's credential: ${CREDENTIAL_ENV} names "${path}", and there is no ` +
        `such file: set it to the node's ${CREDENTIAL_NAME} (the line "server add-node" ` +
        `printed)`,
    );
  }
  return readCredential(path, "Cannot read the node's credential");
}

/**
 * The credential the CLI speaks wire v2 with to the server `url` names: the one
 * {@linkcode CREDENTIAL_ENV} names, for a `socket:` URL; `undefined` otherwise (v1).
 */
export function v2Credential(
  url: string,
  env: EnvReader = Deno.env,
): NodeCredential | undefined {
  return parseBackupUrl(url).scheme === "socket" ? credentialFromEnv(env) : undefined;
}
