/**
 * The privacy check: a plain file backup holds the node's database in the clear (its
 * channels, peers and payments), so other users of this machine must not read it. init
 * makes a backup directory of mode 0700; one made before, or by hand, may be open. The
 * `--mirror` and `--async` file copies are plain backups too.
 *
 * @module
 */
import { fileDestinations } from "../../backends/multi/mirrors.ts";
import { readChain } from "../../format/chain.ts";
import { statIfExists } from "../../fs/exists.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import type { CheckResult, Found } from "./check.ts";

/** Why the file backup at `path` is open to others, if it is; `encrypted` when known. */
function openTo(path: string, encrypted: boolean | undefined): string | undefined {
  const info = statIfExists(path);
  if (!info) return undefined; // A copy missing: the plugin says so at its start.
  if ((info.mode! & 0o077) === 0) return undefined;
  try {
    if (encrypted ?? (info.isDirectory && readChain(path).keyId !== undefined)) return undefined;
  } catch {
    // A copy that does not read: its privacy is still its mode's.
  }
  const mode = info.mode! & 0o777;
  const tight = info.isDirectory ? "700" : "600";
  return `the backup "${path}" holds the node's database in the clear and other users of ` +
    `this machine may read it (mode ${mode.toString(8).padStart(4, "0")}): run ` +
    `"chmod ${tight} ${shellQuote(path)}", or encrypt it (upgrade --encrypt, lightningd stopped)`;
}

export function privacyCheck(found: Found): CheckResult {
  const primary = found.url?.scheme === "file" ? found.url.path : undefined;
  for (const path of fileDestinations(found.lock!)) {
    // The primary's description says whether it is encrypted; a copy's chain is read.
    const open = openTo(path, path === primary ? found.description?.encrypted ?? false : undefined);
    if (open) return ["WARN", open];
  }
  if (found.url?.scheme !== "file") {
    return ["OK", "a remote backup: who may read it is its server's or bucket's rule"];
  }
  if (found.description?.encrypted) return ["OK", "encrypted: its records are sealed"];
  return ["OK", "readable by its owner only"];
}
