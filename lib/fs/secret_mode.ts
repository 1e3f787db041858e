/**
 * The rule for the secret files cln-backup reads (key files, credentials, passphrase and
 * identity files, the server's TLS key and node keys): readable by their owner only, what ssh
 * demands of a private key. Here once, so every command, the plugin and doctor say it alike:
 * the commands and the server refuse such a file, the plugin refuses to start (lightningd stops
 * at its first write), doctor fails it.
 *
 * @module
 */

/** The mode bits that let the file's group or other users at it. */
const OTHERS = 0o077;

/**
 * Why the secret `what` at `path` breaks the rule, with the fix, for a mode `mode` (from
 * stat); `undefined` when only its owner may read it, or the mode is unknown (Windows).
 */
export function exposedSecret(what: string, path: string, mode: number | null): string | undefined {
  if (mode === null || (mode & OTHERS) === 0) return undefined;
  const octal = (mode & 0o777).toString(8).padStart(4, "0");
  return `${what} "${path}" may be read by other users (mode ${octal}): run chmod 600 "${path}"`;
}

/**
 * Refuses the secret `what` at `path` (or its `info`, when statted already) when others may
 * read it, in one line that starts with `action`.
 */
export function checkSecretMode(
  what: string,
  path: string,
  action: string,
  info: Deno.FileInfo = Deno.statSync(path),
): void {
  const problem = exposedSecretFile(what, path, info);
  if (problem !== undefined) throw new Error(`${action}: ${problem}`);
}

/**
 * Why the secret file `what` at `path` (statted as `info`) breaks the rule, with the fix;
 * `undefined` when it does not, or the rule does not apply to it.
 */
export function exposedSecretFile(
  what: string,
  path: string,
  info: Deno.FileInfo = Deno.statSync(path),
): string | undefined {
  // A pipe or a terminal (`<(pass show …)`, /dev/stdin) keeps nothing at rest for others.
  if (!info.isFile) return undefined;
  // ssh's rule: only the reader's own files. One provisioned by another user for the
  // reader's group (root:bitcoin 0640, a container's secret) is theirs to keep; a chmod
  // 600 would lock the reader out. Where the uid may not be asked, every file is checked.
  const own = ownUid();
  if (own !== undefined && info.uid !== null && info.uid !== own) return undefined;
  return exposedSecret(what, realPath(path), info.mode);
}

/** This process's uid, when its permissions let it ask (the launchers may not). */
function ownUid(): number | undefined {
  const granted = Deno.permissions.querySync({ name: "sys", kind: "uid" }).state === "granted";
  return granted ? Deno.uid() ?? undefined : undefined;
}

/** The file `path` names (`/dev/stdin` redirected from a file: that file), for the chmod. */
function realPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}
